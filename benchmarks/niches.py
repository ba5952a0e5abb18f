"""Issue 14's benchmark: specialists bred from examples, judged by the task itself, on the shipped niches.

For each shipped niche (``breedlab niche ship``), side by side in one run on one machine: the parent's
task score on the niche's frozen task suite; an adapter fine-tune and a compact CMG child bred from the
niche's examples (``examples_share``), each with its task score and 95% bootstrap interval over the
suite's cases, its latency per token, its breed CPU-minutes, and the lab's decision against the parent;
for the classify niche also a TF-IDF + logistic-regression baseline trained on the same training examples
and scored on the same held-out cases. The lab decides exactly as ``breedlab lab`` does (paired sign
test and the non-inferiority rule on the per-case task scores).

    .venv/bin/python benchmarks/niches.py --home /tmp/niches            # the real SmolLM2 parent (hours)
    .venv/bin/python benchmarks/niches.py --pico --home /tmp/pico-niches # pico parent, minutes: a smoke run

Rows go to ``docs/results/niches-issue14.json`` (``--out``); breeds are reused from the registry, so
an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from breedlab.data.example_shards import iter_examples
from breedlab.data.shipped_niches import BUILDERS, ship_niche
from breedlab.home import Home
from breedlab.lab.run import LabConfig, run_lab
from breedlab.registry import Registry

OUT = Path(__file__).resolve().parent.parent / "docs" / "results" / "niches-issue14.json"


def interval(cases: list[float], seed: int = 0, resamples: int = 2000) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean per-case score."""
    rng = random.Random(seed)
    means = sorted(sum(rng.choice(cases) for _ in cases) / len(cases) for _ in range(resamples))
    return means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]


def logistic_baseline(registry: Registry, niche: str, suite_cases: list[dict]) -> dict:
    """TF-IDF word n-grams + logistic regression on the niche's training examples, scored on the suite."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    train = list(iter_examples(registry.find(kind="dataset", name=f"{niche}/examples/train")[0].path))
    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=1), LogisticRegression(max_iter=2000))
    model.fit([e.input for e in train], [e.output for e in train])
    predicted = model.predict([c["messages"][-1]["content"] for c in suite_cases])
    cases = [float(p == c["output"]) for p, c in zip(predicted, suite_cases)]
    return {"model": "tfidf+logistic-regression", "task_score": sum(cases) / len(cases), "ci95": interval(cases)}


def ensure_parent(home: Home, registry: Registry, pico: bool, console: Console):
    from breedlab.lab.setup import LAB_ACTOR, crown_parent, ensure_parent_and_data

    if pico:
        from breedlab.lab.pico_home import build_pico_lab

        found = registry.find(kind="parent", name="pico-parent")
        return crown_parent(registry, found[0] if found else build_pico_lab(registry, home.cache_dir).parent,
                            actor=LAB_ACTOR)
    return ensure_parent_and_data(console, home, registry, actor=LAB_ACTOR, domains=["general"])


def lab_config(niche: str, pico: bool, candidates: tuple[str, ...]) -> LabConfig:
    if pico:
        return LabConfig(niche=niche, pico=True, ratio=0.5, distill_tokens=4096, finetune_tokens=4096, lm_cases=6,
                         task_cases=20, retention_cases=4, passage_tokens=32, max_new_tokens=16,
                         candidates=candidates)
    return LabConfig(niche=niche, candidates=candidates, task_cases=60, max_new_tokens=32)


def niche_rows(home: Home, registry: Registry, niche: str, pico: bool, console: Console,
               candidates: tuple[str, ...]) -> list[dict]:
    from breedlab.evaluation.suites import load_suite

    config = lab_config(niche, pico, candidates)
    result = run_lab(registry, home, config, console)
    suite = load_suite(registry, result.suites["task"])
    decisions = {result.champion.id: "champion", **result.selection.outcomes}
    rows = []
    for model_id, fitness in result.fitness.items():
        artifact = registry.get(model_id)
        costs = [e.data["cpu_seconds"] for e in registry.events(model_id) if e.type == "breed-cost"]
        cpu = sum(costs) if costs else None  # every run of the breed, loading and caching included
        rows.append({"niche": niche, "task": suite.settings["task"], "model": artifact.manifest.name, "id": model_id,
                     "operator": artifact.manifest.operator, "task_score": fitness.utility,
                     "ci95": interval(fitness.utility_cases), "cases": len(fitness.utility_cases),
                     "latency_token_ms_p50": fitness.latency_token_ms_p50,
                     "breed_cpu_minutes": round(cpu / 60, 2) if cpu else None,
                     "decision": decisions.get(model_id, "-")})
    if suite.settings["task"] == "classify":
        rows.append({"niche": niche, "task": "classify", **logistic_baseline(registry, niche, suite.cases),
                     "cases": len(suite.cases)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--pico", action="store_true", help="a pico parent: a smoke run of minutes")
    parser.add_argument("--niches", nargs="*", default=list(BUILDERS))
    parser.add_argument("--limit", type=int, default=300,
                        help="examples per niche (20%% held out: 300 gives the 60 test cases the suite scores)")
    parser.add_argument("--candidates", nargs="+", default=["adapter-finetune", "cmg"],
                        help="what the lab breeds per niche (the CMG child costs ~2x the adapter on 2 cores)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    console = Console(stderr=True)
    home = Home.resolve(args.home)
    registry = Registry.open(home.registry_dir)
    ensure_parent(home, registry, args.pico, console)
    rows = []
    for niche in args.niches:
        ship_niche(home, registry, niche, limit=60 if args.pico else args.limit)
        rows += niche_rows(home, registry, niche, args.pico, console, tuple(args.candidates))
        rows = save(rows, args)  # after every niche: an interrupted run keeps what it measured
    report(rows, Console())


def save(rows: list[dict], args) -> list[dict]:
    """Write ``rows`` over the same (niche, model) rows of earlier runs in the file (each row keeps the
    command that measured it); returns every row in the file."""
    out = args.out or (None if args.pico else OUT)
    if not out:
        return rows
    command = " ".join(sys.argv[1:])
    rows = [{**row, "command": row.get("command", command)} for row in rows]
    rows = list({(r["niche"], r["model"]): r for r in rows}.values())  # one row per key: the newest wins
    mine = {(r["niche"], r["model"]) for r in rows}
    earlier = json.loads(out.read_text())["rows"] if out.exists() else []
    merged = [r for r in earlier if (r["niche"], r["model"]) not in mine] + rows
    out.write_text(json.dumps({"machine": f"{platform.platform()}; {torch.get_num_threads()} threads",
                               "script": "benchmarks/niches.py", "rows": merged}, indent=1) + "\n")
    return merged


def report(rows: list[dict], console: Console) -> None:
    table = Table("niche", "model", "task score", "95% CI", "ms/token", "breed CPU min", "decision")
    for r in rows:
        table.add_row(r["niche"], r["model"], f"{r['task_score']:.3f}", f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}]",
                      _num(r.get("latency_token_ms_p50")), _num(r.get("breed_cpu_minutes")), r.get("decision", "-"))
    console.print(table)


def _num(value) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
