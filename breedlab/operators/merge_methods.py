"""Weight-merge methods, registered by name: each merges one tensor of several fine-tunes of one base.

A method is a function ``(base, tensors, weights, recipe, name) -> tensor`` registered with
``@merge_method(name, formula=...)``; ``MergeRecipe.method`` names one, and the formula
is recorded in the merged artifact's recipe. Adding a method is one decorated function
here (or in any module imported by ``breedlab.operators``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Callable

import torch


@dataclass(frozen=True)
class MergeMethod:
    name: str
    merge: Callable[..., torch.Tensor]
    formula: str


METHODS: dict[str, MergeMethod] = {}


def register_merge_method(name: str, *, formula: str):
    def register(function):
        if name in METHODS and METHODS[name].merge is not function:
            raise ValueError(f"merge method {name!r} is already registered")
        METHODS[name] = MergeMethod(name, function, formula)
        return function

    return register


def merge_method(name: str) -> MergeMethod:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"method must be one of {tuple(sorted(METHODS))}, got {name!r}") from None


@register_merge_method("linear", formula="theta = sum_i w_i theta_i / sum_i w_i")
def _linear(base: torch.Tensor, tensors: list[torch.Tensor], weights: tuple[float, ...], recipe: Any,
            name: str = "") -> torch.Tensor:
    return linear_merge(tensors, weights)


@register_merge_method("ties", formula="theta = theta_base + lambda * disjoint_mean(elect_sign(trim(theta_i - theta_base)))")
def _ties(base: torch.Tensor, tensors: list[torch.Tensor], weights: tuple[float, ...], recipe: Any,
          name: str = "") -> torch.Tensor:
    return ties_merge(base, tensors, weights, density=recipe.density, scaling=recipe.scaling)


@register_merge_method("dare", formula="theta = theta_base + lambda * sum_i w_i * m_i * (theta_i - theta_base) / density "
                                       "/ sum_i w_i, m_i ~ Bernoulli(density) seeded by (seed, tensor name)")
def _dare(base: torch.Tensor, tensors: list[torch.Tensor], weights: tuple[float, ...], recipe: Any,
          name: str = "") -> torch.Tensor:
    return dare_merge(base, tensors, weights, density=recipe.density, scaling=recipe.scaling,
                      seed=tensor_seed(recipe.seed, name))


def tensor_seed(seed: int, name: str) -> int:
    """One seed per (recipe seed, tensor): tensors of the same shape must not share one drop mask."""
    return int(hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()[:15], 16)


def dare_merge(base: torch.Tensor, tensors: list[torch.Tensor], weights: tuple[float, ...], *,
               density: float, scaling: float, seed: int) -> torch.Tensor:
    """DARE (Yu et al. 2024, "Language Models are Super Mario"): drop each task-vector entry with
    probability 1 - density, rescale the survivors by 1/density (the expected task vector is kept),
    then average the task vectors by weight; float64 inside, deterministic for the seed."""
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros(base.shape, dtype=torch.float64)
    for weight, tensor in zip(weights, tensors, strict=True):
        delta = tensor.double() - base.double()
        keep = torch.rand(delta.shape, generator=generator, dtype=torch.float64) < density
        total += weight * torch.where(keep, delta / density, torch.zeros_like(delta))
    return (base.double() + scaling * total / sum(weights)).to(base.dtype)


def linear_merge(tensors: list[torch.Tensor], weights: tuple[float, ...]) -> torch.Tensor:
    """sum_i w_i * theta_i / sum_i w_i, in float64 then back to the first tensor's dtype."""
    total = sum(w * t.double() for w, t in zip(weights, tensors, strict=True))
    return (total / sum(weights)).to(tensors[0].dtype)


def trim(task_vector: torch.Tensor, density: float) -> torch.Tensor:
    """TIES step 1: keep the ceil(density * n) largest |entries| (ties at the threshold are all kept)."""
    flat = task_vector.abs().reshape(-1)
    keep = min(flat.numel(), max(1, math.ceil(density * flat.numel())))
    threshold = flat.kthvalue(flat.numel() - keep + 1).values  # the keep-th largest magnitude
    return torch.where(task_vector.abs() >= threshold, task_vector, torch.zeros_like(task_vector))


def ties_merge(base: torch.Tensor, tensors: list[torch.Tensor], weights: tuple[float, ...], *,
               density: float, scaling: float) -> torch.Tensor:
    """TIES steps 1-4 for one tensor (the module docstring); float64 inside."""
    trimmed = torch.stack([trim(t.double() - base.double(), density) for t in tensors])  # (n, ...)
    w = torch.tensor(weights, dtype=torch.float64).reshape(-1, *([1] * base.dim()))  # (n, 1, ...)
    elected = torch.sign((w * trimmed).sum(0))  # (...): +1, -1, or 0 where the mass cancels
    agree = (torch.sign(trimmed) == elected) & (trimmed != 0)  # (n, ...)
    mass = (w * agree).sum(0)
    merged = torch.where(mass > 0, (w * trimmed * agree).sum(0) / mass.clamp(min=1e-300), 0.0)
    return (base.double() + scaling * merged).to(base.dtype)
