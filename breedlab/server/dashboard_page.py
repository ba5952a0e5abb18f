"""The dashboard page: the ecosystem report's SVG figures, live, in one self-contained HTML page.

``render_sections`` turns a ``dashboard_data.snapshot`` into HTML fragments,
one per section; the page embeds them (so it reads without JavaScript) and
``/dashboard/state.json`` serves the same fragments, which a small inline
script swaps in when the snapshot's ``version`` changes. Lineage and routing
charts are the report's own drawing functions (``ecosystem.report_*``), so the
live page and the archived report look alike. Nothing is fetched from outside.
"""

from __future__ import annotations

from breedlab.report.lineage import lineage_svg
from breedlab.report.style import (
    CSS,
    MARKER_EVENTS,
    MODEL_PALETTE,
    PARENT_SERIES,
    STATE_COLORS,
    esc,
    event_color,
    num,
    short_id,
    si,
    state_color,
)
from breedlab.report.svg import Plot, event_markers, stacked_share

DASH = "\u2013"  # an empty cell
ROUTING_MINUTES = 30  # bars on the chart: one per minute that saw traffic, the newest 30
SECTIONS = (("lineage", "Lineage"), ("routing", "Routing share over time"), ("models", "Models: state and fitness"),
            ("router", "Router policies"), ("approval", "People's approval"), ("events", "Recent events"))
EXTRA_CSS = """
header .live { display:inline-flex; align-items:center; gap:6px; }
header .dot { width:9px; height:9px; border-radius:50%; background:#94a3b8; display:inline-block; }
body[data-live="ok"] header .dot { background:#22c55e; }
body[data-live="offline"] header .dot { background:#ef4444; }
.empty { color:var(--muted); padding:18px 0; }
td.mono { white-space:nowrap; }
"""
# Polls the JSON endpoint and swaps in sections whose snapshot changed; marks the page live or offline.
SCRIPT = """
(function () {
  var body = document.body, every = Number(body.dataset.pollMs) || 3000, version = body.dataset.version;
  function show(state, when) {
    body.dataset.live = state;
    document.getElementById("status").textContent = state === "ok" ? "live \\u00b7 " + when : "offline, retrying";
  }
  function tick() {
    fetch("dashboard/state.json", {cache: "no-store"}).then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    }).then(function (s) {
      if (s.version !== version) {
        Object.keys(s.html).forEach(function (key) {
          var el = document.getElementById("body-" + key);
          if (el) { el.innerHTML = s.html[key]; }
        });
        version = s.version;
      }
      show("ok", s.generated_utc);
    }).catch(function () { show("offline"); }).then(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
"""


def render_page(snap: dict, poll_ms: int = 3000) -> str:
    """The whole page, its sections rendered from ``snap`` (refreshes itself every ``poll_ms``)."""
    html = render_sections(snap)
    parent = snap["parent"] or {"name": "no parent", "id": ""}
    sections = "".join(f'<section id="{key}"><h2>{title}</h2><div id="body-{key}">{html[key]}</div></section>'
                       for key, title in SECTIONS)
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>breedlab \u00b7 live ecosystem</title><style>{CSS}{EXTRA_CSS}</style></head>"
            f'<body data-version="{esc(snap["version"])}" data-poll-ms="{int(poll_ms)}" data-live="static">'
            f'<header><h1>breedlab \u00b7 live ecosystem</h1><div class="meta">'
            f'<span><b>parent</b>{esc(parent["name"])} <code>{esc(short_id(parent["id"]))}</code></span>'
            f'<span><b>rendered</b>{esc(snap["generated_utc"])}</span>'
            + (f'<span><b>replica</b>{esc(snap["replica"])} (routing history: this replica\'s traffic)</span>'
               if snap.get("replica") else "") +
            f'<span class="live"><i class="dot"></i><span id="status">server-rendered</span></span></div></header>'
            f"<nav>{nav}</nav><main>{sections}</main><script>{SCRIPT}</script></body></html>\n")


def render_sections(snap: dict) -> dict[str, str]:
    colors = model_colors(snap)
    names = {m["id"]: m["name"] for m in [snap["parent"], *snap["models"]] if m}
    return {"lineage": _lineage(snap), "routing": _routing(snap, names, colors),
            "models": _models(snap, colors), "router": _router(snap), "approval": _approval(snap, names),
            "events": _events(snap, names)}


def _approval(snap: dict, names: dict) -> str:
    """Per model: ratings people gave its answers (POST /v1/feedback), the rate and its Wilson lower bound."""
    cell = lambda v: DASH if v is None else f"{v:.3f}"  # noqa: E731
    rows = [f'<tr><td>{esc(names.get(a["model"], short_id(a["model"])))}</td><td class="n">{a["up"]}</td>'
            f'<td class="n">{a["down"]}</td><td class="n">{cell(a["rate"])}</td><td class="n">{cell(a["bound"])}</td></tr>'
            for a in snap.get("approval", [])]
    if not rows:
        return '<p class="lead">No ratings yet: POST /v1/feedback {"id", "rating": 1 or -1} on any response.</p>'
    head = "<tr><th>model</th><th>+1</th><th>-1</th><th>approval</th><th>95% lower bound</th></tr>"
    return f'<table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _router(snap: dict) -> str:
    """The router policies past candidate, oldest first: which one routes, and what its suite measured."""
    cell = lambda v: DASH if v is None else f"{v:.3f}"  # noqa: E731
    rows = [f'<tr><td><code>{esc(short_id(r["id"]))}</code></td><td>{esc(r["policy"] or "")}</td>'
            f'<td><span class="badge">{esc(r["state"])}</span></td><td class="mono">{esc((r["created"] or "")[:19])}</td>'
            f'<td class="n">{cell(r["served_queries"])}</td><td class="n">{cell(r["served_snippets"])}</td>'
            f'<td class="n">{cell(r["ood_kept"])}</td><td class="n">{cell(r["p50_ms"])}</td></tr>'
            for r in snap.get("router", [])]
    head = ("<tr><th>policy</th><th>kind</th><th>state</th><th>registered (UTC)</th><th>served: queries</th>"
            "<th>served: snippets</th><th>OOD kept</th><th>p50 ms</th></tr>")
    return (f'<table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            '<p class="lead">Served accuracy on the frozen routing suite, from each policy\'s routing packet; '
            'only the champion routes live traffic.</p>')


def model_colors(snap: dict) -> dict[str, str]:
    colors = {"parent": PARENT_SERIES, **{m["id"]: MODEL_PALETTE[i % len(MODEL_PALETTE)]
                                          for i, m in enumerate(snap["models"])}}
    if snap["parent"]:
        colors[snap["parent"]["id"]] = PARENT_SERIES
    return colors


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>'
                                            for n, c in items) + "</div>"


def _lineage(snap: dict) -> str:
    if not snap["parent"]:
        return '<p class="empty">No parent is registered in this home.</p>'
    return (lineage_svg(snap["parent"], snap["models"]) + _legend(list(STATE_COLORS.items()))
            + '<p class="lead">Coloured by lifecycle state now; dashed border: retired or rejected.</p>')


def _routing(snap: dict, names: dict, colors: dict) -> str:
    minutes = snap["routing"][-ROUTING_MINUTES:]
    if not minutes:
        return ('<p class="empty">No requests served since the server started: send one to '
                "<code>/v1/completions</code> or <code>/v1/chat/completions</code>.</p>")
    # The report's charts take windows; here a window is one UTC minute that saw traffic.
    windows = [{"index": m["minute"][11:16], "phase": m["minute"][:10] + " UTC", "served": m["served"]}
               for m in minutes]
    parent_id = snap["parent"]["id"] if snap["parent"] else "parent"
    keys = list(dict.fromkeys(k for m in minutes for k in sorted(m["served"], key=lambda k: k != parent_id)))
    series = [(k, _name(k, names), colors.get(k, "#475569")) for k in keys]
    plot = Plot(1180, 300)
    marks = _marks(snap["events"], {w["index"] for w in windows}, names)
    chart = stacked_share(plot, windows, series, lambda w: w["served"], "routing share per minute",
                          event_markers(plot, windows, marks))
    totals = {k: sum(m["served"].get(k, 0) for m in minutes) for k in keys}
    whole = sum(totals.values()) or 1
    shares = " \u00b7 ".join(f"{esc(_name(k, names))} {totals[k] / whole:.0%}" for k in keys)
    return (chart + _legend([(name, color) for _, name, color in series])
            + f'<p class="lead">{whole:g} requests over the {len(windows)} minute{"s" if len(windows) != 1 else ""} '
              f"shown: {shares}.</p>")


def _name(key: str, names: dict) -> str:
    return names.get(key, key if len(key) < 40 else short_id(key))


def _marks(events: list[dict], minutes: set[str], names: dict) -> dict[str, list[tuple[str, str]]]:
    """Promotions, retirements and rollbacks drawn on the minute they happened."""
    marks: dict[str, list[tuple[str, str]]] = {}
    for e in reversed(events):  # events are newest first; labels read oldest first
        minute = e["ts"][11:16]
        if e["type"] in MARKER_EVENTS and minute in minutes:
            text = f'{names.get(e["artifact"], short_id(e["artifact"]))} \u2192 {e["to"] or e["type"]}'
            marks.setdefault(minute, []).append((e["type"], text))
    return marks


def _models(snap: dict, colors: dict) -> str:
    head = ("<tr><th>model</th><th>recipe</th><th>state</th><th>niches</th><th class=n>utility</th>"
            "<th class=n>domain ppl</th><th class=n>general regr.</th><th class=n>ms/token p50</th>"
            "<th class=n>weights</th><th class=n>FLOPs/token</th><th>gates</th><th>decision</th></tr>")
    rows = [_model_row(m, colors) for m in [snap["parent"], *snap["models"]] if m]
    return (f'<div class="scroll"><table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table></div>'
            '<p class="lead">Fitness from the newest evidence packet about each model (the parent: as the '
            "reference it was measured against); a dash is a metric that packet did not measure.</p>")


def _model_row(m: dict, colors: dict) -> str:
    f = m["fitness"] or {}
    state = "parent" if m["kind"] == "parent" else m["state"]
    gates = f.get("gates") or ""
    gate_class = "fail" if gates.startswith("FAIL") else "pass" if gates == "pass" else ""
    ratio = "" if m["ratio"] is None else f' \u00b7 p={m["ratio"]:g}'
    cells = [(f'<td class="model"><i class="sw" style="background:{colors.get(m["id"], "#475569")}"></i>'
             f'<b>{esc(m["name"])}</b><br><code>{esc(short_id(m["id"]))}</code></td>'),
             (f'<td>{esc(m["operator"] or m["kind"])}<br><span class="muted">{esc(m["domain"] or "all domains")}'
             f"{ratio}</span></td>"),
             f'<td><span class="badge" style="background:{state_color(state)}">{esc(state)}</span></td>',
             f'<td>{esc(", ".join(m["niches"]) or DASH)}</td>',
             *(f'<td class="n">{num(f.get(k))}</td>' for k in ("utility", "domain_ppl", "general_regression")),
             f'<td class="n">{num(f.get("latency_token_ms_p50"))}{_engine_latency(f)}</td>',
             f'<td class="n">{si(f.get("weight_bytes"), "B")}</td>',
             f'<td class="n">{si(f.get("flops_per_token"), "FLOP")}</td>',
             f'<td class="gates {gate_class}">{esc(gates)}</td>', f'<td>{esc(f.get("decision") or "")}</td>']
    return f'<tr data-id="{esc(m["id"])}">' + "".join(cells) + "</tr>"


def _engine_latency(f: dict) -> str:
    """The fast engine's decode ms/token under hf's, when the lab checked one."""
    if not f.get("engine_token_ms"):
        return ""
    return f'<br><span class="muted">{esc(f.get("engine") or "")} {num(f["engine_token_ms"])}</span>'


def _events(snap: dict, names: dict) -> str:
    rows = []
    for e in snap["events"]:
        who = names.get(e["artifact"])
        to = f' \u2192 {esc(e["to"])}' if e["to"] else ""
        rows.append(f'<tr class="ev" style="--ev:{event_color(e["type"])}"><td class="n">{e["seq"]}</td>'
                    f'<td class="mono">{esc(e["ts"][:19])}</td><td><span class="badge">{esc(e["type"])}{to}</span>'
                    f'</td><td><code>{esc(short_id(e["artifact"]))}</code>{"<br>" + esc(who) if who else ""}</td>'
                    f'<td>{esc(e["actor"])}</td><td>{esc(e["niche"] or "")}</td><td>{esc(e["reason"])}</td></tr>')
    head = "<tr><th>#</th><th>time (UTC)</th><th>event</th><th>artifact</th><th>actor</th><th>niche</th><th>reason</th></tr>"
    return (f'<table><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
            f'<p class="lead">The newest {len(rows)} of {snap["event_count"]} events in the registry log.</p>')
