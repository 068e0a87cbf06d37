"""Simulated backends: each module implements one kind's backend interface on the simulated lab
and registers it as backend ``sim`` (``devices/registry.py``)."""
