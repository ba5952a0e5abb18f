"""Inline SVG figures of the ecosystem report: per-window bar charts, line chart, lineage tree.

Everything is drawn with plain ``<rect>``, ``<path>`` and ``<text>``: no
scripts and no fonts to fetch, so the page renders offline and in headless
Chromium. Every text that came from the timeline is escaped with ``esc``.
The lineage tree is in ``lineage.py``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from breedlab.report.style import esc, event_color, si


@dataclass(frozen=True)
class Plot:
    """Pixel geometry of one chart: an inner plot area inside margins."""

    width: int
    height: int
    left: int = 52
    right: int = 14
    top: int = 16
    bottom: int = 46

    @property
    def inner_w(self) -> float:
        return self.width - self.left - self.right

    @property
    def inner_h(self) -> float:
        return self.height - self.top - self.bottom

    def slot(self, n: int) -> float:
        return self.inner_w / max(n, 1)

    def y(self, frac: float) -> float:
        """Pixel y of a value given as a fraction of the y range (0 = bottom)."""
        return self.top + self.inner_h * (1.0 - min(max(frac, 0.0), 1.0))


def svg(plot: Plot, body: list[str], label: str, css_class: str = "chart") -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="{css_class}" role="img" '
            f'aria-label="{esc(label)}" viewBox="0 0 {plot.width} {plot.height}" '
            f'width="{plot.width}" height="{plot.height}">' + "".join(body) + "</svg>")


def frame(plot: Plot, windows: list[dict], y_ticks: list[tuple[float, str]]) -> list[str]:
    """Grid lines with y labels, window numbers under the slots and phase names under those."""
    out = []
    for frac, text in y_ticks:
        y = plot.y(frac)
        out.append(f'<line x1="{plot.left}" x2="{plot.width - plot.right}" y1="{y:.1f}" y2="{y:.1f}" '
                   f'stroke="#e2e8f0"/><text x="{plot.left - 6}" y="{y + 4:.1f}" font-size="11" '
                   f'text-anchor="end" fill="#64748b">{esc(text)}</text>')
    slot, base = plot.slot(len(windows)), plot.height - plot.bottom
    for i, w in enumerate(windows):
        cx = plot.left + (i + 0.5) * slot
        out.append(f'<text x="{cx:.1f}" y="{base + 14}" font-size="11" text-anchor="middle" '
                   f'fill="#475569">{w["index"]}</text>')
    out.extend(_phase_bands(plot, windows))
    return out


def _phase_bands(plot: Plot, windows: list[dict]) -> list[str]:
    """Consecutive windows of one phase share a bracket and the phase's name."""
    out, slot, y = [], plot.slot(len(windows)), plot.height - plot.bottom + 24
    start = 0
    for i in range(1, len(windows) + 1):
        if i < len(windows) and windows[i]["phase"] == windows[start]["phase"]:
            continue
        x0, x1 = plot.left + start * slot + 3, plot.left + i * slot - 3
        name = windows[start]["phase"]
        if len(name) * 6.2 > x1 - x0:
            name = name[: max(int((x1 - x0) / 6.2) - 1, 1)] + "\u2026"
        out.append(f'<path d="M{x0:.1f} {y - 3} V{y} H{x1:.1f} V{y - 3}" stroke="#94a3b8" fill="none"/>'
                   f'<text x="{(x0 + x1) / 2:.1f}" y="{y + 13}" font-size="11" text-anchor="middle" '
                   f'fill="#334155"><title>{esc(windows[start]["phase"])}</title>{esc(name)}</text>')
        start = i
    return out


def percent_ticks() -> list[tuple[float, str]]:
    return [(f, f"{f:.0%}") for f in (0.0, 0.25, 0.5, 0.75, 1.0)]


def stacked_share(plot: Plot, windows: list[dict], series: list[tuple[str, str, str]],
                  counts: Callable[[dict], dict], label: str, markers: list[str] | None = None) -> str:
    """Bars of 100%: per window, the share of each series key in ``counts(window)``.

    ``series`` is (key, display name, colour), drawn bottom-up in that order.
    """
    body = frame(plot, windows, percent_ticks())
    slot = plot.slot(len(windows))
    for i, w in enumerate(windows):
        values = counts(w)
        total = sum(values.values()) or 1.0
        x, acc = plot.left + i * slot + slot * 0.12, 0.0
        for key, name, color in series:
            share = values.get(key, 0.0) / total
            if share <= 0:
                continue
            y_top, y_bot = plot.y(acc + share), plot.y(acc)
            acc += share
            body.append(f'<rect class="bar" x="{x:.1f}" y="{y_top:.1f}" width="{slot * 0.76:.1f}" '
                        f'height="{y_bot - y_top:.1f}" fill="{color}"><title>window {w["index"]}: '
                        f'{esc(name)} {share:.0%} ({values.get(key, 0):g})</title></rect>')
    body.extend(markers or [])
    return svg(plot, body, label)


def event_markers(plot: Plot, windows: list[dict], marks: dict[int, list[tuple[str, str]]]) -> list[str]:
    """Dashed vertical lines at the left edge of windows where traffic moved, labelled along the line.

    ``marks`` maps a window index to (event type, label) pairs. Labels run
    vertically (bottom to top) beside the line with a white halo, so windows
    one slot apart never collide however long the model names are.
    """
    out, slot = [], plot.slot(len(windows))
    position = {w["index"]: i for i, w in enumerate(windows)}
    room = int(plot.inner_h / 6.6)  # characters that fit along the line
    for index, items in sorted(marks.items()):
        if index not in position:
            continue
        x = plot.left + position[index] * slot
        tip = esc("; ".join(text for _, text in items))
        out.append(f'<line class="marker" x1="{x:.1f}" x2="{x:.1f}" y1="{plot.top}" '
                   f'y2="{plot.height - plot.bottom}" stroke="{event_color(items[0][0])}" stroke-width="1.5" '
                   f'stroke-dasharray="4 3"><title>window {index}: {tip}</title></line>')
        for k, (kind, text) in enumerate(items):
            tx, ty = x + 12 + 13 * k, plot.top + 3
            label = text if len(text) <= room else text[: room - 1] + "\u2026"
            out.append(f'<text class="mark" x="{tx:.1f}" y="{ty}" transform="rotate(-90 {tx:.1f} {ty})" '
                       f'text-anchor="end" font-size="11" font-weight="600" fill="{event_color(kind)}" '
                       f'stroke="#fff" stroke-width="3" stroke-linejoin="round" paint-order="stroke">'
                       f'{_symbol(kind)} {esc(label)}</text>')
    return out


def _symbol(kind: str) -> str:
    return {"promoted": "\u25b2", "pruned": "\u2715", "retired": "\u2715", "rolled-back": "\u21ba"}.get(kind, "\u25cf")


def nice_range(peak: float) -> tuple[float, float]:
    """(top, step): the smallest round axis top above ``peak`` with at most five steps."""
    for step in (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0):
        if peak <= 5 * step:
            return max(step * math.ceil(peak / step - 1e-9), step), step
    return peak, peak / 5


def sigma_lines(plot: Plot, windows: list[dict], domains: list[tuple[str, str]], tau: float) -> str:
    """Detector score per domain per window, with the tau_spawn threshold as a dashed red line."""
    top, step = nice_range(1.08 * max([tau] + [v for w in windows for v in w["sigma"].values()]))
    ticks = [(k * step / top, f"{k * step:g}") for k in range(round(top / step) + 1)]
    body, slot = frame(plot, windows, ticks), plot.slot(len(windows))
    for name, color in domains:
        pts = [(plot.left + (i + 0.5) * slot, plot.y(w["sigma"][name] / top), w["sigma"][name], w["index"])
               for i, w in enumerate(windows) if name in w["sigma"]]
        if not pts:
            continue
        body.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                    + " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in pts) + '"/>')
        for x, y, v, idx in pts:
            r = 4.5 if v >= tau else 2.5  # a fat dot: the detector could fire here
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r}" fill="{color}">'
                        f'<title>window {idx}: sigma({esc(name)}) = {v:.3f}</title></circle>')
    y = plot.y(tau / top)
    body.append(f'<line class="tau" x1="{plot.left}" x2="{plot.width - plot.right}" y1="{y:.1f}" '
                f'y2="{y:.1f}" stroke="#dc2626" stroke-width="1.5" stroke-dasharray="6 4"/>'
                f'<text x="{plot.width - plot.right - 4}" y="{y - 5:.1f}" font-size="11" text-anchor="end" '
                f'fill="#dc2626">tau_spawn = {tau:g}</text>')
    return svg(plot, body, "detector score sigma per domain and window")


def flops_bars(plot: Plot, windows: list[dict]) -> str:
    """Per window: FLOPs with everything on the parent (grey) beside FLOPs as served (blue)."""
    peak = max([w["flops"]["parent_only"] for w in windows] + [w["flops"]["served"] for w in windows]) or 1.0
    ticks = [(f, si(f * peak)) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    body, slot = frame(plot, windows, ticks), plot.slot(len(windows))
    for i, w in enumerate(windows):
        x = plot.left + i * slot + slot * 0.12
        bw = slot * 0.38
        parent_only, served = w["flops"]["parent_only"], w["flops"]["served"]
        for k, (value, color, what) in enumerate(((parent_only, "#cbd5e1", "parent only"),
                                                  (served, "#2563eb", "as served"))):
            y = plot.y(value / peak)
            body.append(f'<rect x="{x + k * bw:.1f}" y="{y:.1f}" width="{bw:.1f}" '
                        f'height="{plot.height - plot.bottom - y:.1f}" fill="{color}">'
                        f'<title>window {w["index"]} {what}: {si(value, "FLOP")}</title></rect>')
        if served > 0 and slot >= 34:
            body.append(f'<text x="{x + bw:.1f}" y="{plot.y(parent_only / peak) - 4:.1f}" font-size="10.5" '
                        f'text-anchor="middle" fill="#1e3a8a">{parent_only / served:.2f}\u00d7</text>')
    return svg(plot, body, "FLOPs per window, parent only against as served")
