"""The HTML sections of the ecosystem report, top to bottom, from a validated timeline.

``render_page`` is called by ``report.render_report`` after validation, so
every field read here exists with the documented type.
"""

from __future__ import annotations

import json

from breedlab.report.costs_section import breed_costs_section
from breedlab.report.lineage import lineage_svg
from breedlab.report.style import (
    CSS,
    DOMAIN_PALETTE,
    MARKER_EVENTS,
    MODEL_PALETTE,
    PARENT_SERIES,
    STATE_COLORS,
    esc,
    event_color,
    num,
    pct,
    short_id,
    si,
    state_color,
    times,
)
from breedlab.report.svg import Plot, event_markers, flops_bars, sigma_lines, stacked_share
from breedlab.report.table3 import PAPER_TABLE3, PAPER_TABLE3_STATUS, analytic_speedup, nearest_cell

DASH = "\u2013"  # an empty cell
SECTIONS = (("lineage", "Lineage"), ("routing", "Routing share"), ("traffic", "Traffic & detector"),
            ("fitness", "Fitness"), ("compute", "Compute saved"), ("costs", "Breeding cost"),
            ("events", "Timeline of events"))


def render_page(t: dict) -> str:
    names = {t["parent"]["id"]: t["parent"]["name"], **{m["id"]: m["name"] for m in t["models"]}}
    colors = {"parent": PARENT_SERIES, t["parent"]["id"]: PARENT_SERIES,
              **{m["id"]: MODEL_PALETTE[i % len(MODEL_PALETTE)] for i, m in enumerate(t["models"])}}
    parts = [_header(t), _nav(), "<main>", _summary(t), _lineage(t), _routing(t, names, colors),
             _traffic(t), _fitness(t, colors), _compute(t), breed_costs_section(t), _events(t, names), "</main>"]
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{esc(t["title"])}</title><style>{CSS}</style></head><body>'
            + "\n".join(parts) + "</body></html>\n")


def _header(t: dict) -> str:
    meta = [("profile", f'<span class="badge" style="background:#2563eb">{esc(t["profile"])}</span>'),
            ("created", esc(t["created_utc"])), ("machine", esc(t["machine"])),
            ("parent", f'{esc(t["parent"]["name"])} <code>{esc(short_id(t["parent"]["id"]))}</code>'),
            ("command", f'<code>{esc(t["command"])}</code>')]
    items = "".join(f"<span><b>{k}</b>{v}</span>" for k, v in meta)
    return f'<header><h1>{esc(t["title"])}</h1><div class="meta">{items}</div></header>'


def _nav() -> str:
    return "<nav>" + "".join(f'<a href="#{key}">{label}</a>' for key, label in SECTIONS) + "</nav>"


def _summary(t: dict) -> str:
    events, c = t["events"], t["compute"]
    champions = {e["artifact"] for e in events if e["type"] == "promoted" and e["data"].get("to") == "champion"}
    promotions = sum(e["type"] == "promoted" for e in events)
    pruned = {e["artifact"] for e in events if e["type"] in ("pruned", "retired")}
    refused = sum(e["type"] == "merge-refused" for e in events)
    stats = [("models bred", str(len(t["models"])), f'over {len(t["windows"])} windows'),
             ("champions", str(len(champions)), f"{promotions} promotions in all"),
             ("pruned / retired", str(len(pruned)), f"merges refused: {refused}"),
             ("final coverage", pct(c["coverage"]), "of queries served by children"),
             ("saved (measured)", times(c["saving_flops"]), f'FLOPs; wall time {times(c["saving_time"])}'),
             ("paper Table 3", times(c["paper_table3"]), f'{esc(c["paper_cell"])}; {PAPER_TABLE3_STATUS}'),
             ("routed right", *_routing_stat(t["windows"]))]
    cards = "".join(f'<div class="stat"><div class="k">{k}</div><div class="v">{v}</div>'
                    f'<div class="s">{s}</div></div>' for k, v, s in stats)
    return f'<div class="strip" id="summary">{cards}</div>'


def _routing_stat(windows: list[dict]) -> tuple[str, str]:
    """Share of query-shaped traffic the router sent where it belongs (own niche, or the parent), and snippets'."""
    totals = {}
    for w in windows:
        for shape, counts in w.get("routing", {}).items():
            n, right = totals.get(shape, (0, 0))
            totals[shape] = (n + counts["queries"], right + counts["right"])
    share = lambda shape: pct(totals[shape][1] / totals[shape][0]) if totals.get(shape, (0,))[0] else "n/a"  # noqa: E731
    return share("query"), f"of query-shaped traffic; snippets {share('snippet')}"


def _section(key: str, title: str, lead: str, body: str) -> str:
    return f'<section id="{key}"><h2>{title}</h2><p class="lead">{lead}</p>{body}</section>'


def _legend(items: list[tuple[str, str]]) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{esc(n)}</span>'
                                            for n, c in items) + "</div>"


def _lineage(t: dict) -> str:
    states = [(s, c) for s, c in STATE_COLORS.items()]
    body = (lineage_svg(t["parent"], t["models"]) + _legend(states)
            + '<div class="legend"><span><i style="background:#0891b2"></i>edges of a merge '
              "(one from each parent)</span><span>dashed border: retired or rejected</span></div>")
    return _section("lineage", "Lineage", "Every model bred from the frozen parent, coloured by its lifecycle "
                    "state at the end of the run; label: name, short id, operator, domain and size ratio p.", body)


def _routing(t: dict, names: dict, colors: dict) -> str:
    keys = ["parent"] + [m["id"] for m in t["models"]]
    keys += sorted({k for w in t["windows"] for k in w["served"]} - set(keys))
    series = [(k, _served_name(k, names), colors.get(k, "#475569")) for k in keys]
    marks = _marks(t["events"], names)
    plot = Plot(1180, 340)
    chart = stacked_share(plot, t["windows"], series, lambda w: w["served"], "routing share per window",
                          event_markers(plot, t["windows"], marks))
    used = [(name, color) for key, name, color in series if any(w["served"].get(key) for w in t["windows"])]
    markers = [("\u25b2 promotion", event_color("promoted")), ("\u2715 prune / retire", event_color("pruned")),
               ("\u21ba rollback", event_color("rolled-back"))]
    return _section("routing", "Routing share over time", "Share of each window's queries served by the "
                    "parent (grey, the no-op route) and by each specialist; dashed lines mark the windows "
                    "where a model was promoted, pruned or rolled back.", chart + _legend(used + markers))


def _marks(events: list[dict], names: dict) -> dict[int, list[tuple[str, str]]]:
    """Per window, one label per model and kind of move: 'code-child \u2192 champion', 'code-child pruned'."""
    marks: dict[int, dict[tuple[str, str], tuple[str, str]]] = {}
    for e in events:
        if e["type"] not in MARKER_EVENTS:
            continue
        kind = "pruned" if e["type"] == "retired" else e["type"]  # a prune ends in a retirement: one label
        bucket = marks.setdefault(e["window"], {})
        if kind == "pruned" and (e["artifact"], kind) in bucket:
            continue
        name = names.get(e["artifact"], short_id(e["artifact"]))
        text = (f'{name} \u2192 {e["data"].get("to", "promoted")}' if kind == "promoted"
                else f"{name} rolled back" if kind == "rolled-back" else f'{name} {e["type"]}')
        bucket.pop((e["artifact"], kind), None)  # re-insert: labels stay in the order of the last move
        bucket[(e["artifact"], kind)] = (e["type"], text)
    return {window: list(bucket.values()) for window, bucket in marks.items()}


def _served_name(key: str, names: dict) -> str:
    return "parent" if key == "parent" else names.get(key, short_id(key))


def _traffic(t: dict) -> str:
    domain_colors = [(d, DOMAIN_PALETTE[i % len(DOMAIN_PALETTE)]) for i, d in enumerate(t["domains"])]
    series = [(d, d, c) for d, c in domain_colors]
    plot = Plot(580, 270, top=22)
    mix = stacked_share(plot, t["windows"], series, lambda w: w["mix"], "true domain mix per window")
    sigma = sigma_lines(plot, t["windows"], domain_colors, t["tau_spawn"])
    body = (f'<div class="pair"><div><h3>True domain mix</h3>{mix}</div>'
            f'<div><h3>Detector score sigma per domain</h3>{sigma}</div></div>{_legend(domain_colors)}')
    return _section("traffic", "Traffic and the specialisation detector", "What the queries really were, "
                    "window by window, and the detector's score for each domain; a large dot is at or above "
                    "tau_spawn, where the detector may fire (subject to cooldown and existing specialists).", body)


# (header, right-aligned number?) of the fitness table, in column order
FITNESS_COLUMNS = (("model", False), ("recipe", False), ("state", False), ("utility", True),
                   ("domain ppl", True), ("general regr.", True), ("ms/token p50", True), ("weights", True),
                   ("FLOPs/token", True), ("gates", False), ("decision", False))


def _fitness(t: dict, colors: dict) -> str:
    p = t["parent"]
    measured = {k: v for k, v in (p["fitness"] or {}).items() if v not in (None, "")}
    reference = {"id": p["id"], "name": p["name"], "state": "parent", "operator": "frozen parent",
                 "kind": "", "domain": "all domains", "ratio": 1.0,
                 "fitness": {"weight_bytes": p["weight_bytes"], "flops_per_token": p["flops_per_token"], **measured}}
    rows = [_fitness_row(m, colors, p["flops_per_token"]) for m in [reference, *t["models"]]]
    head = "".join(f'<th{" class=n" if right else ""}>{h}</th>' for h, right in FITNESS_COLUMNS)
    table = f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    return _section("fitness", "Fitness per model", "Measured by the evaluation harness against the frozen "
                    "parent (first row, for reference); FLOPs/token relative to the parent in brackets; "
                    "general regr. is the loss increase on general text.", table)


def _fitness_row(m: dict, colors: dict, parent_flops: float) -> str:
    f = m["fitness"] or {}
    flops, gates = f.get("flops_per_token"), f.get("gates") or ""
    rel = f" ({flops / parent_flops:.2f}\u00d7)" if flops and parent_flops and m["state"] != "parent" else ""
    gate_class = "fail" if gates.upper().startswith("FAIL") else "pass" if gates == "pass" else ""
    swatch = colors.get(m["id"], "#475569")
    ratio = "" if m["ratio"] is None else f' \u00b7 p={m["ratio"]:g}'
    cells = [f'<td class="model"><i class="sw" style="background:{swatch}"></i><b>{esc(m["name"])}</b><br>'
             f'<code>{esc(short_id(m["id"]))}</code></td>',
             f'<td>{esc(m["operator"] or m["kind"] or DASH)}<br><span class="muted">'
             f'{esc(m["domain"] or "no single domain")}{ratio}</span></td>',
             f"<td>{_badge(m['state'])}</td>",
             *(f'<td class="n">{num(f.get(k))}</td>' for k in ("utility", "domain_ppl", "general_regression")),
             f'<td class="n">{num(f.get("latency_token_ms_p50"))}</td>',
             f'<td class="n">{si(f.get("weight_bytes"), "B")}</td>', f'<td class="n">{si(flops, "FLOP")}{rel}</td>',
             f'<td class="gates {gate_class}">{esc(gates)}</td>', f'<td>{esc(f.get("decision") or "")}</td>']
    return "<tr>" + "".join(cells) + "</tr>"


def _badge(state: str) -> str:
    return f'<span class="badge" style="background:{state_color(state)}">{esc(state)}</span>'


def _compute(t: dict) -> str:
    c = t["compute"]
    cards = [("measured saving, FLOPs", times(c["saving_flops"]), "parent-only \u00f7 as served; scope in the notes"),
             ("measured saving, wall time", times(c["saving_time"]), "parent-only \u00f7 as served; scope in the notes"),
             ("paper Table 3", times(c["paper_table3"]), f'{esc(c["paper_cell"])}; {PAPER_TABLE3_STATUS}'),
             ("simple analytic 1/((1\u2212c)+c\u00b7p)", times(analytic_speedup(c["coverage"], c["ratio"])),
              f'c = {c["coverage"]:.2f}, p = {c["ratio"]:.2f}')]
    compare = '<div class="compare">' + "".join(
        f'<div><div class="k">{k}</div><div class="v">{v}</div><div class="k">{s}</div></div>'
        for k, v, s in cards) + "</div>"
    notes = [f"Formula: <code>{esc(c['formula'])}</code>"] if c["formula"] else []
    notes += [esc(n) for n in c["notes"]]
    notes.append("Table 3 is an analytical projection (\u201cderived from Eq. 1\u201d); Eq. 1 is the paper's "
                 "training-cost model and the derivation of these inference gains is not given.")
    chart = flops_bars(Plot(1180, 300, top=22), t["windows"])
    legend = _legend([("all queries on the parent", "#cbd5e1"), ("as served (parent + specialists)", "#2563eb")])
    body = (compare + chart + legend + '<div class="pair">' + _table3(c["coverage"], c["ratio"])
            + '<ul class="notes">' + "".join(f"<li>{n}</li>" for n in notes) + "</ul></div>"
            + _window_table(t["windows"]))
    return _section("compute", "Compute saved against the parent-only baseline", "Measured: the same queries "
                    "replayed with every one on the parent; the number above each pair is that window's speed-up.",
                    body)


def _table3(coverage: float, ratio: float) -> str:
    hit = nearest_cell(coverage, ratio)
    ratios = list(next(iter(PAPER_TABLE3.values())))
    head = "<tr><th>coverage</th>" + "".join(f'<th class="n">p={p:.2f}</th>' for p in ratios) + "</tr>"
    rows = "".join("<tr><td>" + f"{row:.0%}</td>" + "".join(
        f'<td class="n{" hit" if hit == (row, p) else ""}">{v:.1f}\u00d7</td>' for p, v in cells.items())
        + "</tr>" for row, cells in PAPER_TABLE3.items())
    return (f'<table class="t3"><caption class="muted" style="text-align:left">Paper Table 3 '
            f'({PAPER_TABLE3_STATUS}); nearest cell highlighted</caption>{head}{rows}</table>')


def _window_table(windows: list[dict]) -> str:
    head = ("window", "phase", "queries", "on parent", "FLOPs served", "FLOPs parent-only", "speed-up",
            "cumulative", "latency served", "latency parent-only")
    rows, served, baseline = [], 0.0, 0.0
    for w in windows:
        served, baseline = served + w["flops"]["served"], baseline + w["flops"]["parent_only"]
        lat = w["latency_ms"] or {}
        share = w["served"].get("parent", 0) / (sum(w["served"].values()) or 1)
        cells = [str(w["index"]), esc(w["phase"]), str(w["queries"]), pct(share), si(w["flops"]["served"]),
                 si(w["flops"]["parent_only"]), _ratio(w["flops"]["parent_only"], w["flops"]["served"]),
                 _ratio(baseline, served), _ms(lat.get("served")), _ms(lat.get("parent_only"))]
        rows.append("<tr>" + "".join(f'<td{"" if k == 1 else " class=n"}>{v}</td>' for k, v in enumerate(cells))
                    + "</tr>")
    return ('<table style="margin-top:14px"><thead><tr>' + "".join(
        f'<th{"" if k == 1 else " class=n"}>{h}</th>' for k, h in enumerate(head))
        + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def _ratio(baseline: float, served: float) -> str:
    return times(baseline / served) if served > 0 else DASH


def _ms(value: float | None) -> str:
    return DASH if value is None else f"{value:,.0f} ms"


def _events(t: dict, names: dict) -> str:
    head = "<tr><th>window</th><th>time</th><th>type</th><th>artifact</th><th>actor</th><th>reason</th></tr>"
    rows = []
    for e in sorted(t["events"], key=lambda e: e["window"]):  # stable: log order within a window
        data = {k: v for k, v in e["data"].items()}
        extra = f'<div class="data mono">{esc(json.dumps(data, sort_keys=True, default=str)[:160])}</div>' \
            if data else ""
        who = names.get(e["artifact"])
        to = f' \u2192 {esc(e["data"]["to"])}' if isinstance(e["data"].get("to"), str) else ""
        rows.append(f'<tr class="ev" data-type="{esc(e["type"])}" style="--ev:{event_color(e["type"])}">'
                    f'<td class="n">{e["window"]}</td><td class="mono">{esc(e["ts"])}</td>'
                    f'<td><span class="badge">{esc(e["type"])}{to}</span></td>'
                    f'<td><code>{esc(short_id(e["artifact"]))}</code>'
                    f'{"<br>" + esc(who) if who else ""}</td><td>{esc(e["actor"])}</td>'
                    f"<td>{esc(e['reason'])}{extra}</td></tr>")
    table = f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"
    return _section("events", "Timeline of events", f'{len(t["events"])} lifecycle and detector events in '
                    "order, with who acted and why (the registry's event log).", table)
