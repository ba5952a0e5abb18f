"""Routing benchmark (issue 12): every router policy on the frozen routing suite of the REAL corpora.

Known niches code, legal, medical, sysadmin; ``general`` is the parent's own domain (learnt
as a class that always routes to the parent). Each policy is fitted by the shipped recipe
(``router_candidates.fit_calibrated``): train-split snippets plus the parent's synthetic
queries about train documents (30% of each domain's rows), calibrated on validation
snippets and queries. One table per policy over the suite's groups (router_data.py):

- snippets: held-out test-split snippets;
- queries: the parent's synthetic queries about held-out test documents;
- questions: the hand-written questions of breedlab/data/question_sets (never trained on);
- out-of-domain: the hand-written general and out-of-domain sets (all must stay on the parent).

``adapted`` is the hybrid refitted with "live" traffic labelled by the task monitor (its
MiniLM centroids, provenance ``monitor``): validation-split snippets (its queries calibrate it, so they are not also trained on).

Needs the synthetic-query datasets (``breedlab data queries``, see docs/RESULTS.md).

    nice -n 19 env OMP_NUM_THREADS=2 .venv/bin/python benchmarks/routing.py --registry /tmp/bhome/registry
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from breedlab.ecosystem.config import load_section
from breedlab.ecosystem.embed import MemoEmbedder, shared_embedder
from breedlab.ecosystem.monitor import MonitorConfig
from breedlab.ecosystem.router.candidates import FitRecipe, fit_calibrated
from breedlab.ecosystem.router.data import GROUPS, build_routing_suite, load_routing_suite, routing_sets
from breedlab.ecosystem.router.evidence import measure
from breedlab.ecosystem.setup import calibrated_centroids
from breedlab.registry import Registry

KNOWN = ("code", "legal", "medical", "sysadmin")
PARENT_DOMAINS = ("general",)
EMBED_SNIPPETS = 1500  # per domain for policies that embed every training row (~40 ms a text here)
TEXT_SNIPPETS = 6000
POLICIES = {  # name -> (policy kind, train snippets per domain, params)
    "linear": ("linear", TEXT_SNIPPETS, {}),
    "keyword": ("keyword", TEXT_SNIPPETS, {}),
    "centroid": ("centroid", EMBED_SNIPPETS, {}),
    "knn": ("knn", EMBED_SNIPPETS, {}),
    "embed-linear": ("embed-linear", EMBED_SNIPPETS, {}),
    # the shipped hybrid: n-gram when a snippet-shaped text is sure, else kNN (k = 100) on the embedding
    "hybrid": ("hybrid", TEXT_SNIPPETS, {"head_rows": 2000, "fallback": "knn", "head": {"k": 100}}),
    "hybrid-head": ("hybrid", TEXT_SNIPPETS, {"head_rows": 2000}),  # the same with the embed-linear head
    "random": ("random", EMBED_SNIPPETS, {}),
}


def monitor_labels(registry: Registry, embedder, seed: int, known) -> dict[str, list[str]]:
    """The validation split's snippets as live traffic, labelled by the monitor's centroids."""
    domains = [*known, *PARENT_DOMAINS]
    centroids = calibrated_centroids(registry, domains, embedder, load_section(MonitorConfig, "monitor"), seed=seed)
    texts = [t for texts in routing_sets(registry, domains, seed=seed + 1, train_snippets=0,
                                         validation_snippets=60)["validation"].values() for t in texts]
    labels: dict[str, list[str]] = {}
    for text, domain in zip(texts, centroids.assign(embedder.embed(texts))):
        if domain is not None:
            labels.setdefault(domain, []).append(text)
    return labels


def run(args) -> dict:
    registry = Registry.open(Path(args.registry))
    embedder = shared_embedder()
    memo = MemoEmbedder(embedder)  # fitting several policies on the same rows embeds each row once
    known = tuple(args.niches)
    suite = build_routing_suite(registry, list(known), list(PARENT_DOMAINS), seed=args.seed)
    groups = load_routing_suite(suite)
    rows = []
    names = [n for n in (*POLICIES, "adapted") if not args.only or n in args.only]
    for name in names:
        kind, snippets, params = POLICIES["hybrid" if name == "adapted" else name]
        recipe = FitRecipe(kind, known, PARENT_DOMAINS, seed=args.seed, train_snippets=snippets, params=params)
        labels = monitor_labels(registry, memo, args.seed, known) if name == "adapted" else None
        start = time.perf_counter()
        policy = fit_calibrated(registry, recipe, memo, labelled=labels)
        fit_s = time.perf_counter() - start
        report = measure(policy, groups, embedder, args.timing)  # timed with the real embedder, no memo
        rows.append({"policy": name, "kind": kind, "train_snippets": snippets, "params": params,
                     "fit_and_calibrate_s": round(fit_s, 1), "threshold": policy.threshold,
                     "calibration": policy.calibration, "report": report,
                     "labels": {d: len(t) for d, t in (labels or {}).items()}})
        o = report["overall"]
        print(f"{name}: served queries {o['served_queries']:.3f}, snippets {o['served_snippets']:.3f}, "
              f"ood kept {o['ood_kept']:.3f}, p50 {o['p50_ms']:.2f} ms ({fit_s:.0f} s)", flush=True)
    return {"rows": rows, "suite": suite.id, "cases": suite.manifest.recipe["cases"], "embedder": embedder.name,
            "host": platform.node(), "settings": vars(args), "command": " ".join(["python", *sys.argv]),
            "run_options": f"nice {os.nice(0)}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU used"}


def _cell(value, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def policy_table(row: dict) -> list[str]:
    r = row["report"]
    lines = [f"### {row['policy']}", "",
             f"Kind `{row['kind']}`, {row['train_snippets']} train snippets per domain, params {row['params']}, "
             f"fit + calibrate {row['fit_and_calibrate_s']} s; router p50 / p95 with the monitor's embedding "
             f"shared: {r['overall']['p50_ms']:.2f} / {r['overall']['p95_ms']:.2f} ms.", "",
             "| group | in-domain n | accuracy | served accuracy | OOD n | OOD kept on parent | p50 ms | p95 ms |",
             "|---|---|---|---|---|---|---|---|"]
    for group in GROUPS:
        g = r[group]
        lines.append(f"| {group} | {g['queries']} | {_cell(g.get('accuracy'))} | {_cell(g.get('served_accuracy'))} | "
                     f"{g['ood_queries']} | {_cell(g.get('ood_parent_share'))} | {_cell(g.get('p50_full_ms'), 2)} | "
                     f"{_cell(g.get('p95_full_ms'), 2)} |")
    return lines + [""]


def markdown(result: dict) -> str:
    lines = ["# Routing benchmark (issue 12): the frozen routing suite, real corpora", "",
             f"Niches {', '.join(result['settings']['niches'])}; parent domain {', '.join(PARENT_DOMAINS)}. Suite `{result['suite'][:12]}` "
             f"({result['cases']} cases). Embedder: {result['embedder']}. Machine: {result['machine']}.", "",
             f"    {result['command']}    # {result['run_options']}", "",
             "Targets: served accuracy >= 0.90 on in-domain questions with >= 0.95 of out-of-domain kept on the "
             "parent; snippet accuracy >= 0.98; p50 overhead <= 5 ms.", "",
             "| policy | snippet accuracy | served: snippets | served: queries | served: questions | "
             "OOD kept (out-of-domain set) | OOD kept (all) | p50 ms shared | p50 ms alone (questions) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        r = row["report"]
        lines.append(f"| {row['policy']} | {_cell(r['snippets'].get('accuracy'))} | "
                     f"{_cell(r['snippets'].get('served_accuracy'))} | {_cell(r['queries'].get('served_accuracy'))} | "
                     f"{_cell(r['questions'].get('served_accuracy'))} | "
                     f"{_cell(r['out-of-domain'].get('ood_parent_share'))} | {_cell(r['overall']['ood_kept'])} | "
                     f"{r['overall']['p50_ms']:.2f} | {_cell(r['questions'].get('p50_full_ms'), 2)} |")
    lines += ["", "## One table per policy", ""]
    for row in result["rows"]:
        lines += policy_table(row)
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="/tmp/bhome/registry")
    parser.add_argument("--timing", type=int, default=60, help="queries timed one at a time per group")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="*", help="policies to run (default: all)")
    parser.add_argument("--niches", nargs="+", default=list(KNOWN), help="the served niches (default: all four)")
    parser.add_argument("--name", default="routing", help="output files: NAME.md and NAME.json")
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    result = run(args)
    text = markdown(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.md").write_text(text)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
