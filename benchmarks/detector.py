"""Detector benchmark: which weights fire for the domains that rose, and stay quiet for the rest?

Scores per-window domain statistics (volume share, the parent's measured NLL
on the domain's queries, tokens) with the specialisation detector's own
``score`` under several weight settings, side by side on the same windows.
The statistics are either those a demo run recorded in its task monitor
(``<run>/logs/demo-<profile>-queries.sqlite``) or, with ``--replay N``, the
run's trace replayed at N queries per window through a fresh monitor that
measures the run's parent (the demo's 30-40 queries per window leave a quiet
domain under ``min_queries``, so it is never scored at all). The trace's own mix says what should happen: a niche
domain at >= RISEN share of a window's traffic is wanted, one at <= QUIET is
not; in between counts neither way. The parent's own domains never fire.

Per setting: the windows each wanted domain waited before its first firing,
false alarms (a quiet domain scoring over tau with enough queries), and the
separation (lowest sigma of a wanted window minus the highest of a quiet one;
positive means one tau separates them). Writes docs/results/detector.md + .json.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/detector.py --run <home>/demo/full/latest \\
        --run <home>/demo/quick/latest --replay 400
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from breedlab.demo.profiles import load_profile, overridden
from breedlab.ecosystem.detector import DetectorConfig, load_detector_config
from breedlab.ecosystem.monitor import DomainStats

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"
RISEN, QUIET = 0.3, 0.15


def settings(profile) -> dict[str, DetectorConfig]:
    """The weight settings compared: the old gap-heavy default, shipped, the demo profile's, volume alone.

    All share the profile's ``min_queries``: how many queries make evidence depends on the
    trace's window size (30-40 queries here), not on the weights being compared.
    """
    tuned = overridden(load_detector_config(), profile.detector)
    shipped = replace(load_detector_config(), min_queries=tuned.min_queries)
    return {"gap-heavy (the default before 2026-11-22)": replace(shipped, w_volume=0.5, w_gap=0.3, w_savings=0.2,
                                                                tau_spawn=0.4),
            "shipped (ecosystem.yaml)": shipped, f"{profile.name} profile (demo.yaml)": tuned,
            "volume only": replace(tuned, w_volume=1.0, w_gap=0.0, w_savings=0.0)}


def window_stats(run: Path, profile_name: str) -> list[list[DomainStats]]:
    """Each window's DomainStats, as the detector saw them (window tokens summed over its domains)."""
    conn = sqlite3.connect(run / "logs" / f"demo-{profile_name}-queries.sqlite")
    rows = conn.execute("SELECT window, domain, queries, volume_share, breadth, parent_gap, tokens "
                        "FROM domain_stats ORDER BY window, domain").fetchall()
    windows: dict[int, list[tuple]] = {}
    for row in rows:
        windows.setdefault(row[0], []).append(row)
    out = []
    for index in sorted(windows):
        total = sum(r[6] for r in windows[index])
        out.append([DomainStats(r[1], r[0], r[2], r[3], r[4], r[5], r[6], total) for r in windows[index]])
    return out


def scorer(run: Path, profile, config: DetectorConfig):
    """``Detector.score`` for ``config`` on this run's parent (nothing is recorded: score is pure)."""
    from transformers import AutoConfig

    from breedlab.ecosystem.detector import Detector
    from breedlab.evaluation.cost import flops_per_token
    from breedlab.registry import Registry

    registry = Registry.open(run / "registry")
    parent = registry.find(kind="parent")[0]
    model_config = AutoConfig.from_pretrained(parent.path)
    detector = Detector(config, registry, parent.id, actor="benchmark",
                        parent_flops_per_token=flops_per_token(model_config, profile.max_query_tokens),
                        head_flops_per_token=2.0 * model_config.hidden_size * model_config.vocab_size)
    return lambda stats: detector.score(stats)[0]


def evaluate(config: DetectorConfig, score, windows: list[list[DomainStats]], truth: list[dict[str, float]],
             niches: list[str]) -> dict:
    """Delay to the first firing per wanted domain, false alarms, and the wanted/quiet sigma separation."""
    delays, alarms, wanted, quiet = {}, [], [], []
    for domain in niches:
        onset = next((i for i, mix in enumerate(truth) if mix.get(domain, 0.0) >= RISEN), None)
        for index, stats in enumerate(windows):
            found = [s for s in stats if s.domain == domain and s.queries >= config.min_queries]
            if not found:
                continue
            value, share = score(found[0]), truth[index].get(domain, 0.0)
            if share >= RISEN:
                wanted.append(value)
                if value >= config.tau_spawn and domain not in delays:
                    delays[domain] = index - onset
            elif share <= QUIET:
                quiet.append(value)
                if value >= config.tau_spawn:
                    alarms.append({"window": index, "domain": domain, "share": round(share, 3),
                                   "sigma": round(value, 3)})
        if onset is not None and domain not in delays:
            delays[domain] = None  # wanted, never fired
    separation = min(wanted) - max(quiet) if wanted and quiet else None
    return {"config": asdict(config), "delays": delays, "false_alarms": alarms,
            "separation": None if separation is None else round(separation, 3),
            "wanted_sigma": [round(min(wanted), 3), round(max(wanted), 3)] if wanted else None,
            "quiet_sigma": [round(min(quiet), 3), round(max(quiet), 3)] if quiet else None}


def replay(run: Path, profile, queries_per_window: int, scratch: Path):
    """The profile's trace at ``queries_per_window`` through a fresh monitor measuring the run's parent.

    (DomainStats per window, the true mix per window). Larger windows than the demo's give a quiet
    (10%) domain enough queries to be scored at all, which is where weights can misfire.
    """
    from rich.console import Console

    from breedlab.demo.setup import build_monitor
    from breedlab.ecosystem.detector import parent_nll_gap
    from breedlab.ecosystem.embed import shared_embedder
    from breedlab.ecosystem.serving import ModelPool
    from breedlab.ecosystem.trace import Phase, build_trace, domain_pools
    from breedlab.registry import Registry

    registry = Registry.open(run / "registry")
    model, tokenizer = ModelPool(registry, max_tokens=profile.max_query_tokens).load(
        registry.find(kind="parent")[0].id)
    monitor = build_monitor(scratch / f"replay-{profile.name}.sqlite", registry, profile, shared_embedder(),
                            gap_fn=parent_nll_gap(model, tokenizer), console=Console(stderr=True))
    phases = [Phase(p["name"], p["windows"], dict(p["mix"])) for p in profile.phases]
    pools = domain_pools(registry, list(profile.domains), seed=profile.seed)
    trace = build_trace(pools, phases, queries_per_window=queries_per_window, seed=profile.seed)
    windows, truth = [], []
    for queries in trace:
        for query in queries:
            tokens = min(len(tokenizer(query.text)["input_ids"]), profile.max_query_tokens)
            monitor.log(query.text, model="parent", latency_ms=0.0, tokens=tokens)
        windows.append(monitor.close_window())
        truth.append({d: sum(q.domain == d for q in queries) / len(queries) for d in profile.domains})
    return windows, truth


def run_one(run: Path, queries_per_window: int | None, scratch: Path) -> dict:
    timeline = json.loads((run / "timeline.json").read_text())
    profile = load_profile(timeline["profile"])
    if queries_per_window:
        windows, truth = replay(run, profile, queries_per_window, scratch)
        profile = replace(profile, detector={**profile.detector, "min_queries": 20})
    else:
        truth = [{d: n / w["queries"] for d, n in w["mix"].items()} for w in timeline["windows"]]
        windows = window_stats(run, profile.name)
    niches = [d for d in profile.domains if d not in profile.parent_domains]
    rows = {name: evaluate(config, scorer(run, profile, config), windows, truth, niches)
            for name, config in settings(profile).items()}
    gaps = {d: round(sum(s.parent_gap or 0 for w in windows for s in w if s.domain == d)
                     / max(1, sum(1 for w in windows for s in w if s.domain == d)), 2) for d in profile.domains}
    return {"run": str(run), "profile": profile.name, "windows": len(windows), "niches": niches,
            "queries_per_window": queries_per_window or timeline["windows"][0]["queries"],
            "mean_parent_nll": gaps, "settings": rows}


def markdown(results: list[dict], command: str) -> str:
    out = ["# Detector weights on recorded demo traffic", "", f"- command: `{command}`",
           f"- wanted: a niche domain at >= {RISEN:.0%} of a window's queries; quiet: <= {QUIET:.0%}; "
           "cooldowns and specialists ignored (each window scored on its own)", ""]
    for result in results:
        out += [f"## {result['profile']} run ({result['windows']} windows of {result['queries_per_window']} "
                "queries)", "",
                f"Mean parent NLL on each domain's window queries (nats): {result['mean_parent_nll']}", "",
                "| setting | w_volume / w_gap / w_savings, tau | windows to first firing | false alarms | "
                "separation | wanted sigma | quiet sigma |", "|---|---|---|---:|---:|---|---|"]
        for name, row in result["settings"].items():
            c = row["config"]
            delays = ", ".join(f"{d} {'never' if v is None else v}" for d, v in row["delays"].items())
            out.append(f"| {name} | {c['w_volume']} / {c['w_gap']} / {c['w_savings']}, {c['tau_spawn']} | {delays} "
                       f"| {len(row['false_alarms'])} | {row['separation']} | {row['wanted_sigma']} | "
                       f"{row['quiet_sigma']} |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, action="append", required=True, help="a demo run folder (repeatable)")
    parser.add_argument("--replay", type=int, metavar="N", help="replay the run's trace at N queries per window "
                        "through a fresh monitor (min_queries 20 for every setting) instead of its recorded stats")
    parser.add_argument("--out", type=Path, default=RESULTS / "detector")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        results = [run_one(run.expanduser().resolve(), args.replay, Path(scratch)) for run in args.run]
    command = "benchmarks/detector.py " + " ".join(sys.argv[1:])
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results, command)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
