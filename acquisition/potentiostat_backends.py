"""The potentiostat backend a profile names: ``sim``, ``methodscript`` or ``keithley2450``.

``address`` says where the instrument is: a serial port for MethodSCRIPT (``/dev/ttyACM0``), a
VISA resource for the Keithley (``TCPIP::192.168.1.20::5025::SOCKET``, ``USB0::...``). The
address ``sim`` starts that instrument's wire-level simulator in this process, on the simulated
lab's cell and clock, so the real driver runs over a real pty or TCP socket while the other
simulated instruments observe the same cell.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import ConfigError, Instrument, Profile

WIRE_SIM_ADDRESS = "sim"


def check_potentiostat(profile: Profile) -> list[str]:
    """Problems with the potentiostat entry that would only show once instruments are built."""
    inst = profile.potentiostat
    where = f"{profile.source or profile.name}: instruments.{profile.potentiostat_name}"
    if inst.backend == "sim":
        return []
    problems = []
    if not inst.address:
        hint = "a serial port" if inst.backend == "methodscript" else "a VISA resource"
        problems.append(f"{where}.address: the {inst.backend} backend needs {hint}, or "
                        f"'{WIRE_SIM_ADDRESS}' for its wire-level simulator (got nothing)")
    elif inst.address != WIRE_SIM_ADDRESS and profile.sim and profile.sim.speed != 1.0:
        problems.append(f"{where}.address: a real instrument runs in real time, but sim.speed is "
                        f"{profile.sim.speed:g} (set it to 1, or use address: {WIRE_SIM_ADDRESS})")
    if inst.backend == "keithley2450" and inst.address == WIRE_SIM_ADDRESS and profile.sim \
            and profile.sim.clock == "virtual":
        problems.append(f"{where}.address: the wire-level simulators run on a scaled clock; "
                        "sim.clock: virtual is not supported with them")
    return problems


def build_potentiostat_backend(
    profile: Profile, lab, closers: list[Callable[[], None]], sample_interval_s: float | None = None
):
    """The backend for the profile's potentiostat. Anything started (a wire simulator, an open
    port) registers its shutdown in ``closers``. ``sample_interval_s`` (a protocol's
    ``sampling``) overrides the profile's ``settings.sample_interval_s``."""
    inst = profile.potentiostat
    settings = dict(inst.settings or {})
    if sample_interval_s:
        settings["sample_interval_s"] = sample_interval_s
    if inst.backend == "sim":
        from operando.sim_devices.backends import SimPotentiostatBackend

        return SimPotentiostatBackend(lab, _instrument_clock(settings))
    if inst.backend == "methodscript":
        return _methodscript(inst, settings, lab, closers)
    if inst.backend == "keithley2450":
        return _keithley2450(inst, settings, lab, closers)
    raise ConfigError(f"instruments.{profile.potentiostat_name}.backend: unsupported {inst.backend!r}")


def _methodscript(inst: Instrument, settings: dict, lab, closers):
    from operando.devices.backends.methodscript import MethodScriptPotentiostatBackend
    from operando.devices.drivers.methodscript import MethodScriptDriver
    from operando.devices.drivers.methodscript_scripts import ScriptOptions

    port = inst.address
    if port == WIRE_SIM_ADDRESS:
        from operando.sim_devices.wire.methodscript_server import MethodScriptSimulator

        lab.external_potentiostat = True  # the simulated firmware drives the lab's cell now
        simulator = MethodScriptSimulator(lab.cell, lab.clock)
        port = simulator.start()
        closers.append(simulator.stop)
    driver = MethodScriptDriver(port, baudrate=int(settings.get("baudrate", 230400)))
    closers.insert(0, driver.close)  # the port closes before the simulator stops
    options = ScriptOptions(
        sample_interval_s=float(settings.get("sample_interval_s", 1.0)),
        potential_range_V=float(settings.get("potential_range_V", 4.0)),
        steps_per_script=int(settings.get("steps_per_script", 50)),
    )
    return MethodScriptPotentiostatBackend(driver, options, clock=lab.clock.time)


def _keithley2450(inst: Instrument, settings: dict, lab, closers):
    from operando.devices.backends.keithley2450 import Keithley2450Backend

    resource = inst.address
    if resource == WIRE_SIM_ADDRESS:
        from operando.sim_devices.wire.keithley2450_server import Keithley2450Server

        lab.external_potentiostat = True
        server = Keithley2450Server(lab.cell, lab.clock)
        resource = server.start()
        closers.append(server.stop)
    limits = inst.limits
    backend = Keithley2450Backend(
        resource,
        clock=lab.clock,
        sample_interval_s=float(settings.get("sample_interval_s", 1.0)),
        # the SMU's own compliance backs up the software limits: |I| max on voltage-source
        # steps, the window's top plus the excursion tolerance (2 %) on current-source steps
        i_limit_A=limits.i_max_A,
        v_limit_V=limits.e_max_V + 0.02 * (limits.e_max_V - limits.e_min_V),
    )
    closers.insert(0, lambda: _close_visa(backend))
    return backend


def _close_visa(backend) -> None:
    """Close the VISA session the backend opened (it has switched the output off by then)."""
    close = getattr(backend, "close", None)
    if close is not None:
        close()
        return
    instrument = getattr(backend, "_instrument", None)
    if instrument is not None and getattr(backend, "_resource", None):
        instrument.adapter.close()


def _instrument_clock(settings: dict) -> tuple[float, float] | None:
    """Simulated potentiostat only: give it its own clock, {offset_s, drift_ppm}."""
    clock = settings.get("instrument_clock")
    if not clock:
        return None
    return float(clock.get("offset_s", 0.0)), float(clock.get("drift_ppm", 0.0))
