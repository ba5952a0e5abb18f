"""Which weight-only kernel should serve on this CPU? fp32, int8 (dequantise per call) and fp16 (fbgemm's
packed GEMM), first per Linear shape, then as whole SmolLM2 parents through the ``quantize`` operator.

Kernels: one token at a time, 30 distinct weights per shape so none stays in cache (a decode step reads
every layer once). Models: greedy decoding of 64 tokens at one thread in alternating rounds, and the NLL
of 2,048 held-out code tokens. Needs an otherwise idle machine and a home with the parent and corpora:

    .venv/bin/python benchmarks/fp16_probe.py --home /tmp/home [--rounds 5] > docs/results/fp16-probe.txt
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from breedlab.cmg.blocks import dataset_blocks
from breedlab.evaluation.latency import torch_threads
from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.models.kernels.half import Fp16Linear
from breedlab.models.kernels.int8 import Int8Head, Int8Linear, quantize_weight
from breedlab.operators.quantize import QuantizeRecipe, quantize
from breedlab.registry import Registry

SHAPES = [(1536, 576), (576, 1536), (576, 576), (192, 576), (49_152, 576)]
PROMPT = "def merge_sorted(a, b):"


def microseconds(call, repeats: int = 100) -> float:
    for _ in range(5):
        call()
    started = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - started) / repeats * 1e6


def kernel_rows() -> None:
    print("kernel, one token, one thread (us per Linear; 30 distinct weights, 2 for the head)")
    for out_features, in_features in SHAPES:
        count = 2 if out_features > 10_000 else 30
        x = torch.randn(1, in_features)
        weights = [torch.randn(out_features, in_features) * 0.05 for _ in range(count)]
        fp16 = [Fp16Linear(w.half()) for w in weights]
        # the head as each stack serves it: int8's is Int8Head (dequantised 1,024 rows at a time)
        int8 = [(Int8Head if out_features > 10_000 else Int8Linear)(*quantize_weight(w)) for w in weights]
        cells = {"fp32": microseconds(lambda x=x, ws=weights: [torch.nn.functional.linear(x, w) for w in ws]) / count,
                 "int8": microseconds(lambda x=x, ms=int8: [m(x) for m in ms]) / count,
                 "fp16": microseconds(lambda x=x, ms=fp16: [m(x) for m in ms]) / count}
        print(f"  {in_features:>5} -> {out_features:<6} " + "  ".join(f"{k} {v:8.1f}" for k, v in cells.items()))


@torch.no_grad()
def nll(model, blocks: torch.Tensor) -> float:
    logits = model(input_ids=blocks).logits[:, :-1].float()
    return float(torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1)))


def model_rows(home: Home, rounds: int) -> None:
    registry = Registry.open(home.registry_dir)
    parent = registry.find(kind="parent")[0]
    made = {scheme: quantize(registry, home, parent.id, QuantizeRecipe(scheme=scheme), drift_domain="code").child
            for scheme in ("symmetric", "fp16")}
    models = {"fp32": load_candidate(parent)}
    models.update({("int8" if s == "symmetric" else s): load_candidate(a) for s, a in made.items()})
    tokenizer = models["fp32"][1]
    blocks = dataset_blocks(registry.find(kind="dataset", name="code/test")[0].path, tokenizer, 256, 2048)
    print("\nmodels (the parent through the quantize operator)")
    for name, (model, _) in models.items():
        print(f"  {name}: NLL {nll(model, blocks):.4f} nats/token on {blocks.numel():,} held-out code tokens")
    speeds = {name: [] for name in models}
    with torch_threads(1):
        for model, _ in models.values():
            generation_speed(model, tokenizer, "warm up", new_tokens=8, repeats=1)
        for r in range(rounds):
            for name, (model, _) in models.items():
                speeds[name].append(generation_speed(model, tokenizer, PROMPT, new_tokens=64, repeats=1))
            print(f"  round {r}: " + "  ".join(f"{k} {v[-1]:.1f}" for k, v in speeds.items()), flush=True)
    base = statistics.median(speeds["fp32"])
    for name, values in speeds.items():
        median = statistics.median(values)
        print(f"  {name}: median {median:.1f} tokens/s, {median / base:.2f}x fp32")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, quantized engines {torch.backends.quantized.supported_engines}")
    with torch_threads(1):
        kernel_rows()
    model_rows(Home.resolve(args.home), args.rounds)


if __name__ == "__main__":
    main()
