"""``breedlab demo``: the living ecosystem end to end, replayed on a phased query trace.

    parent + corpora -> router (fitted, calibrated, registered) -> monitor + detector
    for each window of the trace:            (general use; code rises; medical rises; code fades)
        every query: route, serve (real forward pass), shadow work, log
        window close: detector -> spawn (lab, approver) -> shadow -> canary -> champion; prune; revalidate
    -> timeline.json + report.html (lineage, routing share, fitness, measured compute saving vs Table 3)

Each run gets its own registry under ``<home>/demo/<profile>/<UTC stamp>/``
(an ecosystem's history is append-only: a second run cannot replay the same
story in the same registry), sharing the home's cache, so the parent's
conversion and the corpora sources are reused. ``--quick`` uses a pico parent
and synthetic domains.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

from breedlab.home import Home
from breedlab.registry import Artifact, Registry
from breedlab.typed_config import HOME_CONFIGS


def run_demo(console: Console, home: Home, *, profile_name: str = "full", progress: bool = True) -> Path:
    """Replay the profile's trace through a fresh ecosystem; return the report's path."""
    from breedlab.demo.profiles import load_profile
    from breedlab.demo.setup import build_parts, parent_and_data
    from breedlab.ecosystem.query_synth import query_texts
    from breedlab.ecosystem.trace import Phase, build_trace, domain_pools, with_queries

    started = time.perf_counter()
    profile = load_profile(profile_name)
    run_home = _run_home(home, profile.name)
    registry = Registry.open(run_home.registry_dir)
    console.print(f"[bold]breedlab demo[/] ({profile.name})  run folder: {run_home.root}")
    console.rule("1. the frozen parent, the corpora, the router")
    parent = parent_and_data(console, run_home, registry, profile)
    parts = build_parts(run_home, registry, profile, parent, console)
    phases = [Phase(p["name"], p["windows"], dict(p["mix"])) for p in profile.phases]
    pools = domain_pools(registry, list(profile.domains), seed=profile.seed)
    asked = {d: query_texts(registry, d, "test") for d in profile.domains}  # about held-out documents only
    pools = with_queries(pools, asked, profile.queries.get("trace_share", 0.0))
    trace = build_trace(pools, phases, queries_per_window=profile.queries_per_window, seed=profile.seed,
                        query_texts=frozenset(t for texts in asked.values() for t in texts))
    console.rule(f"2. the trace: {len(trace)} windows x {profile.queries_per_window} held-out queries")
    windows, events, fitness = _replay(console, run_home, registry, profile, parts, trace, progress)
    console.rule("3. the report")
    parent_flops = parts.pool.flops_per_token(parent.id, profile.max_query_tokens)
    report = _write_outputs(run_home, registry, profile, parent, parent_flops, windows, events, fitness, started)
    console.print(f"timeline: {run_home.root / 'timeline.json'}\nreport:   [bold]{report}[/]")
    console.print(f"finished in {time.perf_counter() - started:.0f} s")
    return report


def _run_home(home: Home, profile: str) -> Home:
    """A fresh folder for this run; its ``cache`` is the home's cache (conversions and sources reused)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    folder = home.root / "demo" / profile / stamp
    if (home.root / HOME_CONFIGS).is_dir():  # the run keeps the overrides it ran with (and a server on it reads them)
        shutil.copytree(home.root / HOME_CONFIGS, folder / HOME_CONFIGS)
    run = Home.resolve(folder)
    (run.root / "cache").symlink_to(home.cache_dir, target_is_directory=True)
    latest = home.root / "demo" / profile / "latest"
    tmp = latest.with_name(".latest.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(stamp)
    tmp.replace(latest)  # atomic: "latest" always names a whole run folder
    return run


def _replay(console, run_home, registry, profile, parts, trace, progress: bool):
    from breedlab.cmg.progress import progress_columns
    from breedlab.demo.story import Story

    with Progress(*progress_columns(), console=console, disable=not progress, transient=True) as bar:
        story = Story(console, run_home, registry, profile, parts, bar if progress else None)
        task = bar.add_task("replaying traffic", total=sum(len(w) for w in trace), stats="queries")
        for index, window in enumerate(trace):
            for query in window:
                story.eco.serve(query)
                bar.advance(task)
            story.close(index, window[0].phase)
    return story.windows, story.events, story.fitness


def _write_outputs(run_home, registry, profile, parent, parent_flops, windows, events, fitness,
                   started) -> Path:
    from breedlab.demo.timeline import compute_panel, model_rows
    from breedlab.evaluation.packets import describe_machine
    from breedlab.registry.events import utc_now
    from breedlab.report.page import write_report

    ratio = _serving_ratio(registry, windows, profile)
    models = model_rows(registry, parent.id, fitness)
    timeline = {
        "title": f"breedlab ecosystem demo ({profile.name})", "profile": profile.name, "created_utc": utc_now(seconds=True),
        "machine": describe_machine(), "command": f"breedlab demo{' --quick' if profile.name == 'quick' else ''}",
        "parent": {"id": parent.id, "name": parent.manifest.name,
                   "flops_per_token": parent_flops, "weight_bytes": _weights(parent)},
        "domains": list(profile.domains), "windows": windows, "events": events, "models": models,
        "compute": compute_panel(windows, profile.phases[-1]["name"], ratio,
                                 _child_flops_ratio(models, parent, windows)),
        "tau_spawn": None, "seconds": round(time.perf_counter() - started, 1),
        "breed_costs": _breed_costs(registry),
    }
    timeline["tau_spawn"] = float({**_shipped_detector(), **profile.detector}["tau_spawn"])
    (run_home.root / "timeline.json").write_text(json.dumps(timeline, indent=1, sort_keys=True) + "\n")
    return write_report(timeline, run_home.root / "report.html")


def _breed_costs(registry: Registry) -> dict:
    """Every breed's measured cost and Equation 1's terms from them (the report's cost section)."""
    from breedlab.governance.costs import breed_costs, costs_panel

    return costs_panel(breed_costs(registry))


def _weights(artifact: Artifact) -> int:
    from breedlab.evaluation.cost import weight_bytes

    return weight_bytes(artifact.manifest)


def _serving_ratio(registry: Registry, windows: list[dict], profile) -> float:
    """p of the children that served the final phase, weighted by queries served: a CMG child's recipe
    ratio, 1.0 for a model the size of the parent (an adapter fine-tune). Table 3 is read at this p."""
    served: dict[str, int] = {}
    for window in (w for w in windows if w["phase"] == profile.phases[-1]["name"]):
        for model, count in window["served"].items():
            if model != "parent":
                served[model] = served.get(model, 0) + count
    if not served:
        return float(profile.lab.get("ratio", 0.3))
    ratios = {m: _recipe_ratio(registry, m) for m in served}
    return sum(ratios[m] * n for m, n in served.items()) / sum(served.values())


def _recipe_ratio(registry: Registry, model_id: str) -> float:
    """The recipe's p of a model; a quantized stack has its source's p (fp16 weights change bytes, not
    parameters)."""
    from breedlab.registry.lineage import full_precision

    return float(full_precision(registry, registry.get(model_id)).manifest.recipe.get("ratio") or 1.0)


def _child_flops_ratio(models: list[dict], parent: Artifact, windows: list[dict]) -> float | None:
    """FLOPs per token of the children that served the final phase, relative to the parent's."""
    final = windows[-1]["phase"] if windows else None
    serving = {m for w in windows if w["phase"] == final for m in w["served"] if m != "parent"}
    flops = {m["id"]: (m["fitness"] or {}).get("flops_per_token") for m in models}
    children = [flops[m] for m in serving if flops.get(m)]
    if not flops.get(parent.id) or not children:
        return None
    return sum(children) / len(children) / flops[parent.id]


def _shipped_detector() -> dict:
    from dataclasses import asdict

    from breedlab.ecosystem.detector import load_detector_config

    return asdict(load_detector_config())
