"""Decode speed of candidate shapes as they would be served, for the proxy search's speed target.

Why measure and not count FLOPs: once the stack's matrix products read fp16 weights, a batch-1
decode step on this CPU costs about the same per layer whatever the layer's width. Untrained fp16
students of SmolLM2 at p = 0.8 decoded at 1.00x the fp16 parent when width-pruned (30 layers) and
1.16x when depth-pruned (24 layers); at p = 0.6, 1.09x and 1.43x (docs/results/depth-speed-probe.txt).
A FLOPs count would call the first two equal-cost shapes 20% cheaper.

Each shape is timed in its fp16 serving form (``kernels/half.py``), greedy with the KV cache, on one
torch thread, in rounds that alternate with the parent's own fp16 form; the speedup is the median
of the per-round ratios, so the host's drift cancels the way the benchmark's does.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch

from breedlab.models.kernels.half import Fp16Linear

DECODE_TOKENS = 32
ROUNDS = 3


def as_fp16(model):
    """A copy of ``model`` whose every Linear (the head included, untied) is an fp16 packed Linear."""
    served = copy.deepcopy(model).eval()
    for module in list(served.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.Linear):
                bias = None if child.bias is None else child.bias.detach()
                setattr(module, name, Fp16Linear(child.weight.detach().half(), bias))
    return served


@torch.no_grad()
def seconds_per_token(model, prompt: torch.Tensor, tokens: int = DECODE_TOKENS) -> float:
    """Wall seconds per generated token, greedy with the KV cache (``prompt``: (1, S) token ids)."""
    started = time.perf_counter()
    model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=tokens,
                   min_new_tokens=tokens, do_sample=False, pad_token_id=0)
    return (time.perf_counter() - started) / tokens


def decode_speedup(parent_served, student, prompt: torch.Tensor, rounds: int = ROUNDS) -> float:
    """``student``'s decode speedup over the parent (``parent_served``: ``as_fp16(parent)``), the
    student served in fp16 too, at one thread: the median of ``rounds`` back-to-back ratios."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the lab times latency (LatencySettings.threads): steady on 2 cores
    try:
        served = as_fp16(student)
        seconds_per_token(served, prompt, tokens=4)  # one-off costs (fbgemm makes a kernel per shape)
        seconds_per_token(parent_served, prompt, tokens=4)
        ratios = [seconds_per_token(parent_served, prompt) / seconds_per_token(served, prompt)
                  for _ in range(rounds)]
        return statistics.median(ratios)
    finally:
        torch.set_num_threads(before)
