"""Backend adapters: a driver's values -> the device layer's backend interface (e.g.
``PotentiostatBackend``), one module per backend. The only place a driver meets the project's
techniques, safety and clocks; ``operando.devices.drivers`` imports nothing from here."""
