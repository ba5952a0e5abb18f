"""The ecosystem report: one self-contained ``report.html`` from a demo's ``timeline.json``.

``breedlab demo`` replays a phased query trace, writes ``timeline.json`` and
calls :func:`write_report`. The page needs nothing from the network (inline
CSS and SVG, no scripts) so it can be opened from an archive years later.
The timeline's schema is in ``timeline_schema.py``; the sections in ``sections.py``.
"""

from __future__ import annotations

from pathlib import Path

from breedlab.registry.atomic import atomic_write_bytes
from breedlab.report.sections import render_page
from breedlab.report.timeline_schema import validate_timeline


def render_report(timeline: dict) -> str:
    """The whole report page as one HTML string (raises ValueError on a malformed timeline)."""
    return render_page(validate_timeline(timeline))


def write_report(timeline: dict, path: Path) -> Path:
    """Render and write atomically (temp file in the same folder, fsync, os.replace)."""
    path = Path(path)
    atomic_write_bytes(path, render_report(timeline).encode("utf-8"))
    return path
