"""Instrument drivers: bytes <-> values, one module per real protocol, no bluesky imports."""
