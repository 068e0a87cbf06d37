"""Every backend a profile may name, found where each one registers itself.

The backend packages are imported once, module by module; each module registers its backends
(``devices/registry.py``) or its wire-level simulators (``sim_devices/wire/registry.py``). Adding a
backend is adding a module to one of these packages: nothing here, or anywhere else, lists
backend names.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Optional

from operando.devices.registry import BackendSpec, registered
from operando.sim_devices.wire.registry import WireSimulator, wire_simulators

BACKEND_PACKAGES = (
    "operando.devices.backends",  # adapters from a driver to a device backend (hardware)
    "operando.sim_devices.backends",  # in-process simulated instruments
    "operando.sim_devices.wire",  # wire-level simulators behind `address: sim`
)
WIRE_SIM_ADDRESS = "sim"

_loaded = False


def load_backends() -> None:
    """Import every module of the backend packages (once), so every registration has run."""
    global _loaded
    if _loaded:
        return
    for package_name in BACKEND_PACKAGES:
        package = importlib.import_module(package_name)
        for module in pkgutil.iter_modules(package.__path__, package_name + "."):
            if module.name.rsplit(".", 1)[-1].startswith("fault"):
                continue  # wire-fault relays register no backend; loaded only for sim.wire_faults
            importlib.import_module(module.name)
    _loaded = True


def backend_names(kind: str) -> list[str]:
    load_backends()
    return sorted(name for k, name in registered() if k == kind)


def backend_spec(kind: str, name: str) -> Optional[BackendSpec]:
    load_backends()
    return registered().get((kind, name))


def wire_simulator(kind: str, backend: str) -> Optional[WireSimulator]:
    load_backends()
    return wire_simulators().get((kind, backend))


def all_wire_simulators() -> list[WireSimulator]:
    load_backends()
    return sorted(wire_simulators().values(), key=lambda s: (s.kind, s.backend))


def all_backends() -> list[BackendSpec]:
    load_backends()
    return sorted(registered().values(), key=lambda s: (s.kind, s.name))
