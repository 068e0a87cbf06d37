"""operando: open instrument control and in-situ acquisition for operando battery research."""

__version__ = "0.1.0"
