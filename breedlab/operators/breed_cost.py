"""What a breed cost: process CPU-seconds and training FLOPs, summed over every run that resumed it.

``run_job`` times each run (``time.process_time``: every thread's CPU of this process, so loading,
profiling, teacher caching and training all count) and adds it to ``cost.json`` in the breed's
checkpoint folder, so a breed interrupted and resumed three times reports all four runs. On
registration the total becomes one ``breed-cost`` event of the artifact (an event, not a manifest
field: a re-breed after gc is a second cost, and the artifact's id must not depend on timings).

FLOPs are the standard estimate for the tokens trained (Kaplan et al.'s 6ND, split by what ran):
``2·N_model`` per token forward, ``2·N_model`` backward through the activations, ``2·N_trainable``
for the weight gradients, plus ``2·N_teacher`` for the teacher's forward on the same tokens when a
teacher (the parent) distils. N counts every parameter (the tied head's matmul is real compute; the
embedding lookup is not, a small overcount). Attention's context-dependent FLOPs are left out.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from breedlab.registry import Artifact, Registry
from breedlab.registry.atomic import atomic_write_bytes

COST_FILE = "cost.json"


@dataclass
class BreedCost:
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    runs: int = 0
    tokens: int = 0
    flops: float = 0.0


class CostMeter:
    """Times one run and folds it into the breed's running total in its checkpoint folder."""

    def __init__(self, checkpoint_dir: Path):
        self.path = checkpoint_dir / COST_FILE
        self.started_cpu, self.started_wall = time.process_time(), time.perf_counter()

    def earlier(self) -> BreedCost:
        if not self.path.is_file():
            return BreedCost()
        try:
            return BreedCost(**json.loads(self.path.read_text()))
        except (ValueError, TypeError):
            return BreedCost()  # a torn or foreign file: this run's cost is still counted

    def stop(self, tokens: int, flops: float) -> BreedCost:
        """The total so far, this run included; saved, so a later resumed run adds to it."""
        before = self.earlier()
        total = BreedCost(before.cpu_seconds + time.process_time() - self.started_cpu,
                          before.wall_seconds + time.perf_counter() - self.started_wall,
                          before.runs + 1, before.tokens + tokens, before.flops + flops)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, json.dumps(asdict(total)).encode())
        return total


def training_flops(model, teacher, tokens: int, distils: bool) -> float:
    """The 6ND-style estimate of one run's training FLOPs (the module docstring)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    flops = tokens * (4.0 * total + 2.0 * trainable)
    if distils and teacher is not None:
        flops += tokens * 2.0 * sum(p.numel() for p in teacher.parameters())
    return flops


def record_cost(registry: Registry, artifact: Artifact, cost: BreedCost, *, actor: str, operator: str) -> None:
    registry.record("breed-cost", artifact.id, actor=actor, reason=f"{operator}: {cost.cpu_seconds:.1f} CPU-s",
                    data={"operator": operator, **{k: round(v, 3) if isinstance(v, float) else v
                                                   for k, v in asdict(cost).items()}})
