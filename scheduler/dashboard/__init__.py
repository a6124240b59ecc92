"""The live admin dashboard's static page: HTML, CSS and a small script that draws its charts
as inline SVG from ``GET /v1/dashboard``. Shipped inside the package; nothing is fetched from
outside the service (the page's Content-Security-Policy allows only its own origin)."""

from __future__ import annotations

from importlib.resources import files

ASSETS = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def asset(name: str) -> tuple[bytes, str]:
    """The bytes and media type of a packaged asset. Raises KeyError for any other name."""
    media_type = ASSETS[name]
    return (files(__package__) / "static" / name).read_bytes(), media_type
