"""The dashboard: ``/`` is the live ecosystem page, ``/dashboard/state.json`` what it refreshes from.

Both are built per request from the registry and the app's routing history
(``dashboard_data.snapshot``), so the page is right from its first byte and
reads without JavaScript; its inline script polls the JSON (which carries the
same rendered sections) every few seconds. No CDN: the server runs offline.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from breedlab.server.dashboard_data import snapshot
from breedlab.server.dashboard_page import render_page, render_sections

router = APIRouter(tags=["dashboard"])
POLL_MS = 3000


def _snapshot(request: Request) -> dict:
    state = request.app.state.breedlab
    # a replica's routing history and feedback counts are its own traffic: the page says which replica
    return {**snapshot(state.registry, state.routing_history(), state.feedback), "replica": state.config.replica or None}


@router.get("/dashboard/state.json")
def dashboard_state(request: Request) -> dict:
    """The snapshot (models, fitness, routing per minute, recent events) plus its rendered sections."""
    snap = _snapshot(request)
    return {**snap, "html": render_sections(snap)}


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def dashboard_page(request: Request) -> HTMLResponse:
    """The live dashboard page (self-contained: inline CSS, SVG and script)."""
    return HTMLResponse(render_page(_snapshot(request), POLL_MS), headers={"Cache-Control": "no-store"})
