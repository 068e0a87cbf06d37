"""Instrument drivers: bytes <-> values, one module per real protocol. No bluesky, and nothing
of the project outside this package (stdlib, numpy, pyserial, pymeasure, pyvisa only), so a
scientist can script an instrument directly; ``operando.devices.backends`` adapts them to the
device layer."""
