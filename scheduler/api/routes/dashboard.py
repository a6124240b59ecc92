"""The live admin dashboard: the page and its assets (public: they hold no data), and the
document it draws (admin token)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from scheduler.api.deps import AdminPrincipal, ServiceDep
from scheduler.api.slow_lane import slow_lane
from scheduler.dashboard import asset

router = APIRouter(tags=["dashboard"])

# Only this origin: the page works offline and no request leaves the machine.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)


def _asset_response(name: str) -> Response:
    body, media_type = asset(name)
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Security-Policy": CSP, "Cache-Control": "no-cache"},
    )


@router.get("/dashboard", include_in_schema=False)
def dashboard_page() -> Response:
    """The dashboard page; it asks for an admin token and keeps it in the tab's session."""
    return _asset_response("index.html")


# One route per asset (no path parameter), so nothing but these files can be asked for.
@router.get("/dashboard/app.js", include_in_schema=False)
def dashboard_script() -> Response:
    return _asset_response("app.js")


@router.get("/dashboard/style.css", include_in_schema=False)
def dashboard_style() -> Response:
    return _asset_response("style.css")


@router.get("/v1/dashboard")
@slow_lane
def dashboard_data(service: ServiceDep, admin: AdminPrincipal) -> dict[str, Any]:
    """Everything the dashboard draws: the savings report's totals and groups (by job kind,
    with SCI per R, and the packing credit), per-region forecast vs actual intensity with job
    windows, the live queue, recent relocations of deployments (expected and measured saving,
    rollbacks), and recent faults (admin)."""
    return service.dashboard(admin)
