"""Serve the dashboard's static page at `/`, with headers that keep it to this origin."""

from __future__ import annotations

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from polycloud.dashboard import STATIC_DIR

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class DashboardFiles(StaticFiles):
    """Static files with a strict content security policy; the page itself is never cached, so an
    upgrade of the control plane is seen on the next load."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if path in ("", ".", "index.html"):
            response.headers["Cache-Control"] = "no-store"
        return response


def mount(app: FastAPI) -> None:
    """Serve the dashboard at `/`; call last, after every API route."""
    app.mount("/", DashboardFiles(directory=STATIC_DIR, html=True), name="dashboard")
