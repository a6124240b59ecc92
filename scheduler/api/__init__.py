"""The REST API: a thin FastAPI shell over ``GreenlightService``."""

from __future__ import annotations

from scheduler.api.app import create_app

__all__ = ["create_app"]
