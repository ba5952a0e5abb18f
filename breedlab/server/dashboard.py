"""The dashboard: ``/`` renders the ecosystem's state as one self-contained page.

The page is built server-side from the same JSON that ``/dashboard/state.json``
serves, so it reads without JavaScript; inline JS polls that endpoint and
re-renders (no CDN: the server runs offline).
"""

from __future__ import annotations

from html import escape

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from ..registry.manifest import MODEL_KINDS

router = APIRouter(tags=["dashboard"])


def models_snapshot(registry) -> list[dict]:
    """Every model with its state and lineage, oldest first."""
    models = []
    for kind in MODEL_KINDS:
        for artifact in registry.find(kind=kind):
            models.append({"id": artifact.id, "kind": kind, "name": artifact.manifest.name,
                           "state": artifact.state, "parents": list(artifact.manifest.parents)})
    return models


@router.get("/dashboard/state.json")
def dashboard_state(request: Request) -> dict:
    return {"models": models_snapshot(request.app.state.breedlab.registry)}


@router.get("/", response_class=HTMLResponse)
def dashboard_page(request: Request) -> str:
    rows = "".join(f"<tr><td>{escape(m['id'][:12])}</td><td>{escape(m['kind'])}</td><td>{escape(m['state'] or '')}"
                   f"</td></tr>" for m in models_snapshot(request.app.state.breedlab.registry))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>breedlab</title></head><body>"
            f"<h1>breedlab</h1><table><tr><th>model</th><th>kind</th><th>state</th></tr>{rows}</table></body></html>")
