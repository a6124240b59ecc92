"""One router per resource; ``ROUTERS`` is what ``create_app`` mounts."""

from __future__ import annotations

from fastapi import APIRouter

from scheduler.api.routes import (
    dashboard,
    deployments,
    forecasts,
    health,
    jobs,
    progress,
    regions,
    reports,
    tokens,
)

ROUTERS: tuple[APIRouter, ...] = (
    health.router,
    jobs.router,
    deployments.router,
    progress.router,
    regions.router,
    forecasts.router,
    reports.router,
    tokens.router,
    dashboard.router,
)
