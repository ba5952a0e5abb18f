"""How the ecosystem report looks: colours, the inline stylesheet and number formats.

Shared by the SVG charts (``svg.py``) and the HTML sections
(``sections.py``) so a state or an event type has one colour everywhere.
"""

from __future__ import annotations

from html import escape

# Lifecycle states (registry.lifecycle.STATES) plus the frozen parent.
STATE_COLORS = {
    "parent": "#1e3a8a", "candidate": "#9ca3af", "shadow": "#8b5cf6", "canary": "#f59e0b",
    "champion": "#16a34a", "retired": "#64748b", "rejected": "#dc2626",
}
UNKNOWN_COLOR = "#6b7280"
PARENT_SERIES = "#cbd5e1"  # the parent is the no-op route: a quiet grey under the children
MODEL_PALETTE = ("#2563eb", "#db2777", "#0891b2", "#ea580c", "#7c3aed", "#65a30d", "#b45309", "#0f766e")
DOMAIN_PALETTE = ("#64748b", "#0ea5e9", "#e11d48", "#a855f7", "#84cc16", "#f97316", "#14b8a6", "#eab308")
EVENT_COLORS = {
    "registered": "#64748b", "promoted": "#16a34a", "demoted": "#d97706", "rejected": "#dc2626",
    "retired": "#475569", "rolled-back": "#b45309", "spawn-requested": "#2563eb", "pruned": "#9333ea",
    "merged": "#0891b2", "merge-refused": "#be123c", "merge-skipped": "#a16207", "flagged": "#ea580c",
    "revalidated": "#0d9488",
}
# Events drawn as vertical markers on the routing chart: the moments traffic moves.
MARKER_EVENTS = ("promoted", "pruned", "retired", "rolled-back")


def esc(value: object) -> str:
    """Every string that came from the timeline goes through here (reasons may hold < > &)."""
    return escape(str(value), quote=True)


def short_id(artifact_id: str) -> str:
    return artifact_id[:12]


def state_color(state: str) -> str:
    return STATE_COLORS.get(state, UNKNOWN_COLOR)


def event_color(kind: str) -> str:
    return EVENT_COLORS.get(kind, UNKNOWN_COLOR)


def si(value: float | None, unit: str = "") -> str:
    """1.23e12 -> '1.23 T' + unit; None -> an en dash."""
    if value is None:
        return "\u2013"
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.3g} {prefix}{unit}"
    return f"{value:.3g} {unit}".rstrip()


def num(value: float | None, digits: int = 3) -> str:
    return "\u2013" if value is None else f"{value:.{digits}g}"


def times(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.2f}\u00d7"


def pct(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.0%}"


CSS = """
:root { --ink:#0f172a; --muted:#64748b; --line:#e2e8f0; --bg:#f1f5f9; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--ink);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
header { background:#0f172a; color:#e2e8f0; padding:22px 32px 18px; }
header h1 { margin:0 0 6px; font-size:24px; color:#fff; font-weight:650; }
header .meta { display:flex; flex-wrap:wrap; gap:6px 22px; font-size:13px; color:#cbd5e1; }
header .meta b { color:#94a3b8; font-weight:500; margin-right:4px; }
header code { background:#1e293b; padding:2px 7px; border-radius:4px; color:#e2e8f0; }
.badge { display:inline-block; padding:1px 8px; border-radius:999px; font-size:12px;
  font-weight:600; color:#fff; white-space:nowrap; }
nav { background:#fff; border-bottom:1px solid var(--line); padding:8px 32px; font-size:13px; }
nav a { color:#1d4ed8; text-decoration:none; margin-right:18px; }
main { max-width:1240px; margin:0 auto; padding:18px 24px 40px; }
.strip { display:grid; grid-template-columns:repeat(auto-fit, minmax(160px, 1fr)); gap:12px; margin-bottom:18px; }
.stat { background:var(--card); border:1px solid var(--line); border-radius:10px; padding:12px 16px; }
.stat .v { font-size:26px; font-weight:700; line-height:1.15; }
.stat .k { color:var(--muted); font-size:12px; text-transform:uppercase; letter-spacing:.04em; }
.stat .s { color:var(--muted); font-size:12px; }
section { background:var(--card); border:1px solid var(--line); border-radius:10px;
  padding:16px 20px 18px; margin-bottom:18px; }
section h2 { margin:0 0 4px; font-size:18px; }
section p.lead { margin:0 0 12px; color:var(--muted); font-size:13px; }
.pair { display:grid; grid-template-columns:1fr 1fr; gap:18px; }
.pair h3 { margin:4px 0 2px; font-size:14px; }
svg { display:block; max-width:100%; height:auto; }
svg.lineage { margin:6px auto 4px; }
svg text { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
.legend { display:flex; flex-wrap:wrap; gap:4px 16px; font-size:12px; color:#334155; margin:6px 0 2px; }
.legend i { display:inline-block; width:12px; height:12px; border-radius:3px; margin-right:5px;
  vertical-align:-2px; }
table { border-collapse:collapse; width:100%; font-size:13px; }
th { text-align:left; color:var(--muted); font-weight:600; font-size:12px; border-bottom:2px solid var(--line);
  padding:6px 8px; white-space:nowrap; }
td { border-bottom:1px solid var(--line); padding:6px 8px; vertical-align:top; }
td.n, th.n { text-align:right; font-variant-numeric: tabular-nums; white-space:nowrap; }
tr:hover td { background:#f8fafc; }
code, .mono { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size:12px; }
td.model { white-space:nowrap; }
.sw { display:inline-block; width:10px; height:10px; border-radius:2px; margin-right:6px; }
.scroll { overflow-x:auto; }
td.gates { min-width:130px; }
.fail { color:#b91c1c; font-weight:600; }
.pass { color:#15803d; font-weight:600; }
.muted { color:var(--muted); }
.compare { display:grid; grid-template-columns:repeat(auto-fit, minmax(200px, 1fr)); gap:12px; margin:6px 0 14px; }
.compare > div { border:1px solid var(--line); border-radius:8px; padding:10px 14px; }
.compare .v { font-size:22px; font-weight:700; }
.compare .k { font-size:12px; color:var(--muted); }
table.t3 { width:auto; margin-top:6px; }
table.t3 td.hit { background:#fef3c7; font-weight:700; outline:2px solid #f59e0b; }
ul.notes { margin:8px 0 0; padding-left:18px; color:#334155; font-size:13px; }
tr.ev td:first-child { border-left:4px solid var(--ev); }
tr.ev .badge { background:var(--ev); }
.data { color:#475569; font-size:12px; }
@media (max-width: 900px) { .pair { grid-template-columns:1fr; } }
"""
