"""Is fp16 faster where the demo serves? A prefill-only forward pass (no generation), as
``ecosystem/serving.py`` times each query, for registered models beside the fp32 parent.

Each round times every model once at 2 torch threads (the serving default) on the same random ids;
the table gives medians of 7 rounds and each model's ratio to the first one. Needs an idle machine:

    .venv/bin/python benchmarks/prefill_probe.py --home /tmp/home \
        fp32=6eeea804444e fp16=265620222244 med-child-fp16=7f5d6015b575 med-child=94e4ca736d81
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.registry import Registry


def load_models(registry: Registry, named_ids: list[str]) -> dict:
    models = {}
    for item in named_ids:
        name, _, prefix = item.partition("=")
        matches = [a for a in registry.find() if a.id.startswith(prefix)]
        if len(matches) != 1:
            raise SystemExit(f"{prefix!r} names {len(matches)} artifacts, not one")
        models[name] = load_candidate(matches[0])[0].eval()
    return models


@torch.no_grad()
def median_seconds(models: dict, tokens: int, rounds: int) -> dict[str, float]:
    ids = torch.randint(100, 40_000, (1, tokens), generator=torch.Generator().manual_seed(tokens))
    times: dict[str, list[float]] = {name: [] for name in models}
    for model in models.values():  # warm-up: first calls allocate and (fbgemm) pack
        model(input_ids=ids)
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model(input_ids=ids)
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", required=True)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--tokens", type=int, nargs="+", default=[16, 48])
    parser.add_argument("models", nargs="+", help="NAME=ID_PREFIX; the first is the baseline")
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = load_models(Registry.open(Home.resolve(args.home).registry_dir), args.models)
    base = next(iter(models))
    print(f"prefill-only forward, 2 threads, median of {args.rounds} rounds; ratio = {base} time / model time")
    for tokens in args.tokens:
        seconds = median_seconds(models, tokens, args.rounds)
        cells = "  ".join(f"{name} {s * 1e3:6.1f} ms {seconds[base] / s:4.2f}x" for name, s in seconds.items())
        print(f"  {tokens:3d} tokens: {cells}")


if __name__ == "__main__":
    main()
