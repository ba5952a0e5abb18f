"""Ecosystem benchmark (issue 5): the demo's measured compute saving next to the paper's Table 3.

Runs ``breedlab demo`` with a profile (or reads the ``timeline.json`` of a run
already made) and prints, side by side in one table, per phase: the share of
queries served by children (coverage), FLOPs and wall time as served vs all
on the parent (measured in the same run, on the same queries), the simple
analytic speed-up 1/((1-c)+c*p) and the paper's projected Table 3 cell nearest
to the final phase. Writes docs/results/ecosystem-<profile>.md + .json.

    .venv/bin/python benchmarks/ecosystem.py --profile quick [--home DIR]
    .venv/bin/python benchmarks/ecosystem.py --timeline ~/.cache/breedlab/demo/full/latest/timeline.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from breedlab.report.table3 import analytic_speedup, paper_table3

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def phase_rows(timeline: dict) -> list[dict]:
    """One row per phase: coverage and measured savings over the phase's windows."""
    rows, phases = [], list(dict.fromkeys(w["phase"] for w in timeline["windows"]))
    ratio = timeline["compute"]["ratio"]
    for phase in phases:
        windows = [w for w in timeline["windows"] if w["phase"] == phase]
        queries = sum(w["queries"] for w in windows)
        children = sum(n for w in windows for model, n in w["served"].items() if model != "parent")
        coverage = children / max(1, queries)
        flops = [sum(w["flops"][k] for w in windows) for k in ("served", "parent_only")]
        ms = [sum(w["latency_ms"][k] for w in windows) for k in ("served", "parent_only")]
        rows.append({"phase": phase, "windows": len(windows), "queries": queries, "coverage": coverage,
                     "flops_saving": flops[1] / flops[0], "time_saving": ms[1] / ms[0],
                     "analytic": analytic_speedup(coverage, ratio)})
    return rows


def render(timeline: dict, rows: list[dict]) -> tuple[Table, str]:
    compute = timeline["compute"]
    table3, cell = paper_table3(compute["coverage"], compute["ratio"])
    table = Table(title=f"measured compute saving, demo profile {timeline['profile']} (p = {compute['ratio']})")
    header = ["phase", "windows", "queries", "coverage", "FLOPs saving", "wall-time saving", "1/((1-c)+c*p)"]
    for column in header:
        table.add_column(column)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        cells = [r["phase"], str(r["windows"]), str(r["queries"]), f"{r['coverage']:.0%}", f"{r['flops_saving']:.2f}x",
                 f"{r['time_saving']:.2f}x", f"{r['analytic']:.2f}x"]
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    final = (f"Final phase: coverage {compute['coverage']:.0%}, measured FLOPs saving {compute['saving_flops']:.2f}x, "
             f"wall time {compute['saving_time']:.2f}x; paper Table 3 (projected, not experimental) "
             f"{'n/a' if table3 is None else f'{table3}x'} ({cell}).")
    markdown = "\n".join([f"# Ecosystem benchmark ({timeline['profile']})", "",
                          f"Command: `{timeline['command']}`; machine: {timeline['machine']}; "
                          f"created {timeline['created_utc']}.", "", *lines, "", final, "",
                          *[f"- {note}" for note in compute.get("notes", [])], ""])
    return table, markdown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--home", type=Path, default=None)
    parser.add_argument("--timeline", type=Path, default=None, help="read this run instead of running the demo")
    args = parser.parse_args()
    console = Console()
    if args.timeline is None:
        from breedlab.demo.run import run_demo
        from breedlab.home import Home

        report = run_demo(console, Home.resolve(args.home), profile_name=args.profile)
        args.timeline = report.parent / "timeline.json"
    timeline = json.loads(args.timeline.read_text())
    table, markdown = render(timeline, phase_rows(timeline))
    console.print(table)
    console.print(markdown.splitlines()[-len(timeline["compute"].get("notes", [])) - 2])
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"ecosystem-{timeline['profile']}.md").write_text(markdown)
    summary = {"compute": timeline["compute"], "phases": phase_rows(timeline), "timeline": str(args.timeline)}
    (RESULTS / f"ecosystem-{timeline['profile']}.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
