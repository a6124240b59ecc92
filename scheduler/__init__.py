"""Greenlight: a carbon-aware cluster job scheduler."""

__version__ = "0.1.0"
