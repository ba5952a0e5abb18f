"""Which examples each step sees, and at what learning rate: pure functions of the step.

Nothing here keeps state, so a resumed run recomputes exactly the batches and
learning rates the uninterrupted run would have used.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def is_rehearsal_step(step: int, share: float) -> bool:
    """Spread rehearsal batches evenly: step ``s`` is one when floor((s+1)*share) > floor(s*share).

    Over any run of n steps this gives floor(n*share) or one more rehearsal
    steps, so the rehearsal share of training tokens is ``share`` to within 1/n.
    """
    return math.floor((step + 1) * share) > math.floor(step * share)


def stream_position(step: int, share: float, examples_share: float | None = None) -> tuple[str, int]:
    """("general" | "domain" | "examples", how many batches of that stream came before this step).

    ``examples_share`` of the non-rehearsal steps, spread evenly the same way, train on the
    niche's examples; the rest on its documents. None: documents only (as before examples existed).
    """
    rehearsals_before = math.floor(step * share)
    if is_rehearsal_step(step, share):
        return "general", rehearsals_before
    number = step - rehearsals_before
    if examples_share:
        examples_before = math.floor(number * examples_share)
        if is_rehearsal_step(number, examples_share):
            return "examples", examples_before
        return "domain", number - examples_before
    return "domain", number


def batch_indices(batch_number: int, batch_size: int, pool_size: int, seed: int) -> torch.Tensor:
    """Indices into a pool of blocks for the n-th batch of a stream: seeded epochs of permutations."""
    start = batch_number * batch_size
    indices = []
    for position in range(start, start + batch_size):
        epoch, offset = divmod(position, pool_size)
        indices.append(int(_epoch_order(seed, epoch, pool_size)[offset]))
    return torch.tensor(indices, dtype=torch.long)


@lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, pool_size: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(pool_size, generator=generator)


def learning_rate(step: int, total_steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up to ``peak``, then cosine decay to 10% of it."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total_steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))
