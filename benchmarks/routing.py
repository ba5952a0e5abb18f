"""Routing benchmark (issue 5, item 3): every router policy on the REAL corpora.

Fits each policy on query-sized snippets (1-3 sentences or lines) cut from the
train splits of the known domains, calibrates its threshold on the validation
splits (with ``general`` as the out-of-domain traffic the parent keeps), and
evaluates on held-out snippets from the test splits. Prints one table with the
random baseline side by side and writes docs/results/routing.md + routing.json.
Targets: accuracy >= 95% and p50 overhead < 5 ms per query.

    .venv/bin/python benchmarks/routing.py [--registry /tmp/demo-home/registry]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import re
import time
from pathlib import Path

from breedlab.data.read import iter_texts
from breedlab.ecosystem.embed import shared_embedder
from breedlab.ecosystem.router import calibrate, fit
from breedlab.ecosystem.router_eval import evaluate_policy
from breedlab.registry import Registry

KNOWN = ("code", "legal", "medical", "sysadmin")
OUT_OF_DOMAIN = "general"
POLICY_NAMES = ("centroid", "knn", "keyword", "random")
UNIT = re.compile(r"(?<=[.!?])\s+|\n+")  # sentence ends, or line breaks (code, shell)


def snippets(texts: list[str], limit: int, seed: int) -> list[str]:
    """Cut documents into query-sized snippets of 1-3 consecutive sentences or lines
    (40-400 characters, because a routed query is short), then sample ``limit`` of them."""
    rng = random.Random(seed)
    out = []
    for text in texts:
        units = [u.strip() for u in UNIT.split(text) if u and len(u.strip()) > 3]
        i = 0
        while i < len(units):
            n = rng.randint(1, 3)
            piece = " ".join(units[i:i + n])
            i += n
            if 40 <= len(piece) <= 400:
                out.append(piece)
    rng.shuffle(out)
    return out[:limit]


def split_snippets(registry: Registry, domain: str, split: str, docs: int, limit: int, seed: int):
    """Snippets from the first ``docs`` documents of ``domain/split``, and the dataset id."""
    artifact = registry.find(kind="dataset", name=f"{domain}/{split}")[0]
    texts = []
    for text in iter_texts(artifact.path):
        texts.append(text)
        if len(texts) >= docs:
            break
    return snippets(texts, limit, seed), artifact.id


def load_data(registry: Registry, args) -> tuple[dict, list[str]]:
    """{split: {domain: snippets}} for known domains and general, plus the data ids."""
    data: dict[str, dict[str, list[str]]] = {"train": {}, "validation": {}, "test": {}}
    plan = {"train": (args.train_docs, args.train_snippets), "validation": (100, args.val_snippets),
            "test": (args.test_docs, args.test_snippets)}
    ids = []
    for domain in (*KNOWN, OUT_OF_DOMAIN):
        for split, (docs, limit) in plan.items():
            data[split][domain], data_id = split_snippets(registry, domain, split, docs, limit, args.seed)
            ids.append(data_id)
    return data, ids


def run(args) -> dict:
    registry = Registry.open(Path(args.registry))
    data, data_ids = load_data(registry, args)
    embedder = shared_embedder()
    known = lambda split: {d: data[split][d] for d in KNOWN}
    rows = []
    for name in POLICY_NAMES:
        start = time.perf_counter()
        policy = fit(name, known("train"), embedder=embedder, seed=args.seed)
        calibrate(policy, known("validation"), out_of_domain=data["validation"][OUT_OF_DOMAIN])
        fit_s = time.perf_counter() - start
        report = evaluate_policy(policy, known("test"), embedder=embedder,
                                 out_of_domain=data["test"][OUT_OF_DOMAIN], timing_queries=args.timing)
        rows.append({**report.to_dict(), "fit_and_calibrate_s": round(fit_s, 2)})
        print(f"{name}: accuracy {report.accuracy:.3f}, p50 {report.overhead_ms_p50:.2f} ms", flush=True)
    sizes = {split: {d: len(v) for d, v in by.items()} for split, by in data.items()}
    return {"rows": rows, "snippets": sizes, "data_ids": data_ids, "embedder": embedder.name,
            "host": platform.node(), "settings": vars(args)}


def markdown(result: dict) -> str:
    """The one table, random baseline included, with the issue's targets."""
    lines = ["# Routing benchmark (real corpora)", "",
             (f"Known domains: {', '.join(KNOWN)}; out-of-domain: {OUT_OF_DOMAIN}. "
              f"Embedder: {result['embedder']}. Held-out snippets: {result['snippets']['test']}."),
             "Targets (issue 5): accuracy >= 95%, p50 overhead < 5 ms per query.", "",
             ("| policy | accuracy | confident accuracy | parent share | OOD kept on parent | "
              "threshold | p50 ms | p95 ms |"), "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        conf = "n/a" if r["accuracy_confident"] is None else f"{r['accuracy_confident']:.3f}"
        lines.append(f"| {r['policy']} | {r['accuracy']:.3f} | {conf} | {r['parent_share']:.3f} | "
                     f"{r['ood_parent_share']:.3f} | {r['threshold']:.3f} | "
                     f"{r['overhead_ms_p50']:.2f} | {r['overhead_ms_p95']:.2f} |")
    lines += ["", "Per-domain accuracy:", ""]
    for r in result["rows"]:
        lines.append(f"- {r['policy']}: " + ", ".join(f"{d} {a:.3f}" for d, a in r["per_domain"].items()))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="/tmp/demo-home/registry")
    parser.add_argument("--train-docs", type=int, default=200)
    parser.add_argument("--train-snippets", type=int, default=600)
    parser.add_argument("--val-snippets", type=int, default=150)
    parser.add_argument("--test-docs", type=int, default=200)
    parser.add_argument("--test-snippets", type=int, default=300)
    parser.add_argument("--timing", type=int, default=200, help="queries timed one at a time")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/results")
    args = parser.parse_args()
    result = run(args)
    text = markdown(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "routing.md").write_text(text)
    (out / "routing.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
