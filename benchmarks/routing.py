"""Routing benchmark (issue 5, item 3): every router policy on the REAL corpora.

Fits each policy on query-sized snippets (1-3 sentences or lines) cut from the
train splits of the known domains, calibrates its threshold on the validation
splits (with ``general`` as the out-of-domain traffic the parent keeps), and
evaluates on held-out snippets from the test splits. Prints one table with the
random baseline side by side and writes docs/results/routing.md + routing.json.
Targets: accuracy >= 95% and p50 overhead < 5 ms per query.

Training data: up to ``--train-snippets`` per domain from ALL train documents (one
shuffled pool per domain). Embedding policies fit on the first
``--embed-train-snippets`` of that same pool, because embedding ~45k snippets with
MiniLM takes about half an hour on 2 cores; with 10x their old data they still
stay under 90% (routing.md), so the cap does not decide the comparison.

    nice -n 19 env OMP_NUM_THREADS=1 .venv/bin/python benchmarks/routing.py --registry /tmp/demo-home/registry
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from pathlib import Path

from breedlab.data.read import iter_texts
from breedlab.ecosystem.embed import MemoEmbedder, shared_embedder
from breedlab.ecosystem.router import calibrate, fit
from breedlab.ecosystem.router_policies import policy_class
from breedlab.ecosystem.router_eval import evaluate_policy
from breedlab.registry import Registry

KNOWN = ("code", "legal", "medical", "sysadmin")
OUT_OF_DOMAIN = "general"
POLICY_NAMES = ("linear", "centroid", "knn", "keyword", "random")
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
    memo = MemoEmbedder(embedder)
    known = lambda split: {d: data[split][d] for d in KNOWN}
    rows = []
    for name in POLICY_NAMES:
        start = time.perf_counter()
        train = known("train")
        if policy_class(name).uses_embeddings:
            train = {d: texts[:args.embed_train_snippets] for d, texts in train.items()}
        policy = fit(name, train, embedder=memo, seed=args.seed)
        calibrate(policy, known("validation"), out_of_domain=data["validation"][OUT_OF_DOMAIN])
        fit_s = time.perf_counter() - start
        report = evaluate_policy(policy, known("test"), embedder=embedder,
                                 out_of_domain=data["test"][OUT_OF_DOMAIN], timing_queries=args.timing)
        rows.append({**report.to_dict(), "fit_and_calibrate_s": round(fit_s, 2),
                     "train_snippets": {d: len(t) for d, t in train.items()}})
        print(f"{name}: accuracy {report.accuracy:.3f}, p50 {report.overhead_ms_p50:.2f} ms", flush=True)
    sizes = {split: {d: len(v) for d, v in by.items()} for split, by in data.items()}
    return {"rows": rows, "snippets": sizes, "data_ids": data_ids, "embedder": embedder.name,
            "host": platform.node(), "settings": vars(args), "command": " ".join(["python", *sys.argv]),
            "run_options": f"nice {os.nice(0)}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}",
            "machine": f"{os.cpu_count()}-core CPU ({platform.machine()}), no GPU used"}


NOTES = """## Definitions

- accuracy: the policy's argmax domain equals the true domain, over all held-out in-domain
  snippets (router_eval.py, unchanged from the first version of this benchmark).
- served accuracy: confident (>= threshold) AND right, over the same snippets: a snippet
  kept on the parent counts as not routed. The threshold trades it against the parent share.
- OOD kept on parent: share of held-out `general` snippets below the threshold.
- p50/p95: wall time to route ONE query alone (featurise or embed, score, decide), 200
  queries timed one at a time after one warm-up call, nice 19, OMP_NUM_THREADS=1.
- threshold: the calibration rule in router.py (95% precision on validation, and at most
  5% of validation `general` snippets above it).

## Data

Snippets are cut exactly as before (1-3 sentences or lines, 40-400 characters). What
changed against the first run (centroid 0.843, knn 0.857): training snippets now come
from all train documents (it used the first 200), up to 12000 per domain for text
policies (legal has only ~11k) and the first 1500 of the same shuffled pool for the
embedding policies. Validation and test snippets are unchanged. Datasets are
content-addressed: routing.json lists the 15 dataset ids this run read.

## Tried and not kept (scratch runs on the same splits, not regenerated by this script)

- Embedding policies with 6000 snippets per domain from 2000 documents: centroid 0.844,
  knn (k=10) 0.898, logistic regression on the MiniLM embeddings 0.892; their per-query
  embedding (10-30 ms on 2 cores) alone misses the 5 ms target.
- Hybrids of the linear policy and embedding logistic regression (probability mean,
  geometric mean, cascade that embeds only when the linear model is unsure): 0.938-0.948,
  no better than linear alone at 6000 snippets per domain, and the embedded share pays ~15 ms.
- Linear variants at 12000 snippets per domain: 2**20 hash columns 0.957, case-preserving
  features with word-shape tokens 0.957, default (2**18, lower-cased) 0.955; at 6000 per
  domain from 2000 documents 0.946, at 600 per domain from 200 documents 0.850; all
  snippets capped at 25000 per domain with class-balanced weights 0.958 (not worth 2x fit time).
"""


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial share: how far the held-out accuracy could
    move with another draw of ``n`` test snippets (it is not symmetric near 1)."""
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5
    return centre - half, centre + half


def markdown(result: dict) -> str:
    """The one table, random baseline included, with the issue's targets."""
    s = result["settings"]
    lines = ["# Routing benchmark (real corpora)", "",
             (f"Known domains: {', '.join(KNOWN)}; out-of-domain: {OUT_OF_DOMAIN}. "
              f"Embedder: {result['embedder']}. Held-out snippets: {result['snippets']['test']}."),
             (f"Training snippets per domain: text policies {result['snippets']['train']}; embedding "
              f"policies the first {s['embed_train_snippets']} of each. Machine: {result['machine']}."
              ).replace("'general': ", "'general' (unused): "),
             "", f"    {result['command']}    # {result['run_options']}", "",
             "Targets (issue 5): accuracy >= 95%, p50 overhead < 5 ms per query.", "",
             ("| policy | accuracy | accuracy 95% interval | confident accuracy | served accuracy | "
              "parent share | OOD kept on parent | threshold | p50 ms | p95 ms | both targets |"),
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        conf = "n/a" if r["accuracy_confident"] is None else f"{r['accuracy_confident']:.3f}"
        met = "yes" if r["accuracy"] >= 0.95 and r["overhead_ms_p50"] < 5.0 else "no"
        low, high = wilson_interval(r["accuracy"], r["queries"])
        lines.append(f"| {r['policy']} | {r['accuracy']:.3f} | {low:.3f}-{high:.3f} | {conf} | {r['served_accuracy']:.3f} | "
                     f"{r['parent_share']:.3f} | {r['ood_parent_share']:.3f} | {r['threshold']:.3f} | "
                     f"{r['overhead_ms_p50']:.2f} | {r['overhead_ms_p95']:.2f} | {met} |")
    lines += ["", "Per-domain accuracy:", ""]
    for r in result["rows"]:
        lines.append(f"- {r['policy']}: " + ", ".join(f"{d} {a:.3f}" for d, a in r["per_domain"].items()))
    return "\n".join(lines) + "\n\n" + NOTES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--registry", default="/tmp/demo-home/registry")
    parser.add_argument("--train-docs", type=int, default=100_000, help="documents per train split (default: all)")
    parser.add_argument("--train-snippets", type=int, default=12_000, help="per domain, text policies")
    parser.add_argument("--embed-train-snippets", type=int, default=1_500, help="per domain, embedding policies")
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
