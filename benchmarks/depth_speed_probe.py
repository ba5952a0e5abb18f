"""Does depth buy decode speed once the weights are fp16? Untrained students of the parent (weights
copied, no training: speed only), each with its Linears and head in fp16, timed against the parent in
fp16 in alternating rounds at one thread, 64 greedy tokens:

    .venv/bin/python benchmarks/depth_speed_probe.py --home /tmp/home [--rounds 5]

Rows: p = 0.8 keeping every layer (FFN narrowed, the compact child's shape), p = 0.8 by depth alone
(``uniform``: every k-th layer), and p = 0.6 both ways.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from breedlab.cmg.student import plan_student
from breedlab.cmg.student_weights import build_student
from breedlab.evaluation.latency import torch_threads
from breedlab.evaluation.lm import generation_speed
from breedlab.evaluation.measure import load_candidate
from breedlab.home import Home
from breedlab.models.kernels.half import Fp16Linear
from breedlab.registry import Registry

PROMPT = "def merge_sorted(a, b):"


def to_fp16(model):
    """Every Linear (the head included, untied) as an fp16 packed Linear, as the fp16 stack serves it."""
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                setattr(module, name, Fp16Linear(child.weight.detach().half(),
                                                 None if child.bias is None else child.bias.detach()))
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    registry = Registry.open(Home.resolve(args.home).registry_dir)
    parent, tokenizer = load_candidate(registry.find(kind="parent")[0])
    shapes = {"width p=0.8": ("width", 0.8), "depth p=0.8": ("uniform", 0.8),
              "width p=0.6": ("width", 0.6), "depth p=0.6": ("uniform", 0.6)}
    models = {}
    for label, (strategy, ratio) in shapes.items():
        plan = plan_student(parent.config, ratio=ratio, strategy=strategy,
                            profile=None if strategy == "uniform" else _profile(registry, parent))
        models[f"{label} ({len(plan.layers)} layers, FFN {len(plan.neurons[0])})"] = to_fp16(build_student(parent, plan))
    models = {"parent fp16 (30 layers, FFN 1536)": to_fp16(parent), **models}
    speeds = {name: [] for name in models}
    with torch.no_grad(), torch_threads(1):
        for model in models.values():
            generation_speed(model, tokenizer, "warm up", new_tokens=8, repeats=1)
        for r in range(args.rounds):
            for name, model in models.items():
                speeds[name].append(generation_speed(model, tokenizer, PROMPT, new_tokens=64, repeats=1))
            print(f"round {r}: " + "  ".join(f"{v[-1]:.1f}" for v in speeds.values()), flush=True)
    base = statistics.median(speeds["parent fp16 (30 layers, FFN 1536)"])
    for name, values in speeds.items():
        print(f"{name}: median {statistics.median(values):.1f} tokens/s, {statistics.median(values) / base:.2f}x "
              "the fp16 parent")


def _profile(registry, parent):
    """Width pruning ranks channels by importance: any stored profile of this parent will do for speed."""
    from breedlab.cmg.profile import load_profile

    found = registry.find(kind="profile")
    if not found:
        raise SystemExit("no profile in this home: breed a child first")
    return load_profile(found[0].path / "profile.safetensors")


if __name__ == "__main__":
    main()
