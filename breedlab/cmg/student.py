"""Step 2 of the CMG (Genesis V1, section VI.B): student initialisation.

A student is a narrower, shallower copy of the parent with ``ratio`` times its
parameters (non-embedding ones by default). Planning has two halves:

1. the *shape* (how many layers, query heads per kv group, MLP neurons), solved
   the same way for every strategy so that strategies are compared at equal
   size: the fewest full-width layers that reach the target, then the MLP
   narrowed (and query heads, only if the MLP would drop below a quarter of
   the parent's) uniformly across layers to land within 2% of the target;
2. the *selection* (which parts): ``profiled`` keeps the parts the task
   profile (``profile.py``) ranks highest, ``uniform`` spreads evenly (the
   DistilBERT recipe), ``random`` draws with a seed, ``scratch`` keeps the
   shape only and initialises every weight afresh.

Hidden size, vocabulary, kv heads and head_dim stay the parent's, so the
tokenizer is shared and k_proj/v_proj are copied whole; under GQA every kv
group keeps the same number of query heads (chosen within the group).
Weights are copied, never re-learned, and the parent is never modified.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from breedlab.cmg.profile import Profile
from breedlab.cmg.recipe import STRATEGIES
from breedlab.registry.canonical import sha256_json

PRUNED = ("width", "depth", "mixed")  # layers by block influence, heads and neurons by importance
TOLERANCE = 0.02  # a plan lands within +-2% of its target parameter count
MIN_FFN_FRACTION = 0.25  # below this MLP width, query heads are narrowed instead


@dataclass(frozen=True)
class StudentShape:
    """The size of a student: the same for every strategy at one ratio."""

    layers: int  # decoder layers kept
    heads_per_group: int  # query heads kept per kv head (GQA group)
    intermediate: int  # MLP neurons per kept layer (one number: LlamaConfig needs that)


@dataclass(frozen=True)
class ParentDims:
    """The parent's dimensions that the parameter count depends on."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    tied: bool
    attention_bias: bool
    mlp_bias: bool

    @classmethod
    def of(cls, config) -> ParentDims:
        heads = config.num_attention_heads
        return cls(
            hidden=config.hidden_size, layers=config.num_hidden_layers, heads=heads,
            kv_heads=getattr(config, "num_key_value_heads", None) or heads,
            head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
            intermediate=config.intermediate_size, vocab=config.vocab_size,
            tied=bool(getattr(config, "tie_word_embeddings", False)),
            attention_bias=bool(getattr(config, "attention_bias", False)),
            mlp_bias=bool(getattr(config, "mlp_bias", False)),
        )

    @property
    def group(self) -> int:
        return self.heads // self.kv_heads

    @property
    def full(self) -> StudentShape:
        return StudentShape(self.layers, self.group, self.intermediate)

    def layer_params(self, heads_per_group: int, intermediate: int) -> int:
        """Exact parameters of one decoder layer of this width."""
        d, q, kv = self.hidden, self.kv_heads * heads_per_group * self.head_dim, self.kv_heads * self.head_dim
        attention = d * q + 2 * d * kv + q * d + (q + 2 * kv + d if self.attention_bias else 0)
        mlp = 3 * d * intermediate + (2 * intermediate + d if self.mlp_bias else 0)
        return attention + mlp + 2 * d  # + input and post-attention RMSNorm weights

    def fixed_params(self, count_embeddings: bool) -> int:
        """Parameters outside the decoder layers: final norm, and embeddings if counted."""
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.hidden + (embeddings if count_embeddings else 0)

    def count(self, shape: StudentShape, count_embeddings: bool) -> int:
        layer = self.layer_params(shape.heads_per_group, shape.intermediate)
        return shape.layers * layer + self.fixed_params(count_embeddings)


def count_student_params(parent_config, shape: StudentShape, *, count_embeddings: bool = False) -> int:
    """Exact parameter count of a student of ``shape`` (tied embeddings counted once).

    Matches ``models.io.count_parameters(model, include_embeddings=count_embeddings)``.
    """
    return ParentDims.of(parent_config).count(shape, count_embeddings)


def solve_shape(parent_config, budget: int, layers: int | None = None) -> StudentShape:
    """The student shape whose decoder layers hold about ``budget`` parameters.

    Depth first unless ``layers`` is given: the fewest full-width layers
    reaching the budget; then every kept layer is narrowed alike, MLP first,
    query heads only when the MLP would fall below MIN_FFN_FRACTION of the
    parent's. ``layers`` fixes the depth (width pruning keeps every layer).
    """
    dims = ParentDims.of(parent_config)
    full = dims.layer_params(dims.group, dims.intermediate)
    if layers is None:
        layers = min(dims.layers, max(1, math.ceil(budget / full)))
    per_layer = budget / layers
    floor = math.ceil(MIN_FFN_FRACTION * dims.intermediate)
    for heads in range(dims.group, 0, -1):
        base = dims.layer_params(heads, 0)
        per_neuron = dims.layer_params(heads, 1) - base
        neurons = round((per_layer - base) / per_neuron)
        if neurons >= floor:
            break
    return StudentShape(layers, heads, max(1, min(dims.intermediate, neurons)))


@dataclass(frozen=True)
class StudentPlan:
    """What a student keeps of its parent, and how big it is; indices are the parent's."""

    strategy: str
    ratio: float
    count_embeddings: bool
    layers: tuple[int, ...]  # kept decoder layers, in the parent's order
    heads: tuple[tuple[int, ...], ...]  # per kept layer: kept query heads (sorted, grouped by kv head)
    neurons: tuple[tuple[int, ...], ...]  # per kept layer: kept MLP neurons (sorted)
    target_params: int
    student_params: int
    parent_params: int

    def to_dict(self) -> dict:
        """Everything, as plain JSON (neuron lists included: can be long)."""
        return {**asdict(self), "layers": list(self.layers),
                "heads": [list(h) for h in self.heads], "neurons": [list(n) for n in self.neurons]}

    @classmethod
    def from_dict(cls, data: dict) -> StudentPlan:
        """Inverse of ``to_dict`` (tuples restored, so equality and hashing work)."""
        return cls(**{**data, "layers": tuple(data["layers"]),
                      "heads": tuple(tuple(h) for h in data["heads"]),
                      "neurons": tuple(tuple(n) for n in data["neurons"])})

    @property
    def sha256(self) -> str:
        """sha256 of the canonical JSON of the whole plan: names the exact selection."""
        return sha256_json(self.to_dict())

    def summary(self) -> dict:
        """Short plain JSON for recipes and reports: no neuron lists, plus the plan's sha256."""
        full = self.to_dict()
        del full["neurons"]
        return {**full, "num_hidden_layers": len(self.layers), "num_attention_heads": len(self.heads[0]),
                "intermediate_size": len(self.neurons[0]), "sha256": self.sha256}


def spread_evenly(count: int, total: int) -> list[int]:
    """``count`` of ``range(total)`` evenly spaced, first and last included."""
    if count == 1:
        return [0]  # one pick cannot include both ends; the first layer reads the embeddings
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


def _choose(strategy: str, total: int, count: int, scores: torch.Tensor | None, generator) -> list[int]:
    """Sorted indices of ``count`` parts out of ``total`` under ``strategy``."""
    if strategy == "profiled":
        values = scores.tolist()
        picked = sorted(range(total), key=lambda i: (-values[i], i))[:count]
    elif strategy == "uniform":
        picked = spread_evenly(count, total)
    elif strategy == "random":
        picked = torch.randperm(total, generator=generator)[:count].tolist()
    else:  # scratch: nothing is copied, the indices only fix the shape
        picked = list(range(count))
    return sorted(picked)


def by_influence(influence: torch.Tensor, count: int) -> list[int]:
    """The ``count`` layers depth pruning keeps: the first and last always (the first reads the
    embeddings, the last writes the logits: ShortGPT and Minitron both keep them), then the rest
    by block influence, highest first (ties: lower index first)."""
    total = influence.numel()
    if count >= total:
        return list(range(total))
    if count < 2:
        raise ValueError("depth pruning keeps the first and last layers: at least 2 layers")
    values = influence.tolist()
    middle = sorted(range(1, total - 1), key=lambda i: (-values[i], i))[:count - 2]
    return sorted([0, *middle, total - 1])


def _check_profile(dims: ParentDims, profile: Profile | None, strategy: str = "profiled") -> None:
    if profile is None:
        raise ValueError(f"strategy {strategy!r} needs a profile (run cmg.profile.profile_model first)")
    if strategy in PRUNED and profile.block_influence is None:
        raise ValueError(f"strategy {strategy!r} needs a profile with block influence (re-profile the parent)")
    expected = ((dims.layers,), (dims.layers, dims.heads), (dims.layers, dims.intermediate))
    actual = tuple(tuple(t.shape) for t in (profile.layer_importance, profile.head_importance,
                                             profile.neuron_importance))
    if actual != expected:
        raise ValueError(f"profile shapes {actual} do not fit this parent (expected {expected})")


def select_parts(parent_config, shape: StudentShape, *, strategy: str, profile: Profile | None = None,
                 seed: int = 0) -> tuple[tuple, tuple, tuple]:
    """(layers, heads per layer, neurons per layer) for ``shape`` under ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    dims = ParentDims.of(parent_config)
    scored = strategy == "profiled" or strategy in PRUNED
    if scored:
        _check_profile(dims, profile, strategy)
    generator = torch.Generator().manual_seed(seed)
    if strategy in PRUNED:
        layers = by_influence(profile.block_influence, shape.layers)
        strategy = "profiled"  # heads and neurons: by importance, as the paper's
    else:
        layers = _choose(strategy, dims.layers, shape.layers, profile.layer_importance if scored else None,
                         generator)
    heads, neurons = [], []
    for layer in layers:
        kept = []
        for g in range(dims.kv_heads):  # query heads g*group .. share kv head g (repeat_kv order)
            scores = profile.head_importance[layer, g * dims.group:(g + 1) * dims.group] if scored else None
            kept += [g * dims.group + i for i in _choose(strategy, dims.group, shape.heads_per_group,
                                                         scores, generator)]
        heads.append(tuple(kept))
        scores = profile.neuron_importance[layer] if scored else None
        neurons.append(tuple(_choose(strategy, dims.intermediate, shape.intermediate, scores, generator)))
    return tuple(layers), tuple(heads), tuple(neurons)


def plan_student(parent_config, *, ratio: float, strategy: str, profile: Profile | None = None,
                 count_embeddings: bool = False, seed: int = 0, layers: int | None = None) -> StudentPlan:
    """Plan a student with ``ratio`` of the parent's parameters (+-2%).

    ``count_embeddings=False`` applies ``ratio`` to non-embedding parameters
    (the embeddings are kept whole either way); True applies it to all of them.
    ``layers`` fixes the depth; ``width`` keeps every layer, ``mixed`` takes it
    from the proxy search (``shape_search.py``), the rest solve depth first.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
    if (strategy == "profiled" or strategy in PRUNED) and profile is None:
        raise ValueError(f"strategy {strategy!r} needs a profile (run cmg.profile.profile_model first)")
    if strategy == "mixed" and layers is None:
        raise ValueError("strategy 'mixed' needs its layer count from the proxy search (cmg.shape_search)")
    if not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1], got {ratio}")
    dims = ParentDims.of(parent_config)
    parent_params = dims.count(dims.full, count_embeddings)
    target = round(ratio * parent_params)
    budget = target - dims.fixed_params(count_embeddings)
    if budget <= 0:
        raise ValueError(
            f"ratio {ratio} of all {parent_params:,} parameters is {target:,}, below the embeddings alone "
            f"({dims.fixed_params(True):,}), which every student keeps whole; use a larger ratio or "
            "count_embeddings=False (ratio of the non-embedding parameters)")
    if strategy == "width":
        layers = dims.layers
    shape = solve_shape(parent_config, budget, layers)
    student = dims.count(shape, count_embeddings)
    if abs(student - target) > TOLERANCE * target:
        smallest = dims.count(StudentShape(1, 1, 1), count_embeddings)
        raise ValueError(
            f"cannot plan {ratio} of this parent within {TOLERANCE:.0%}: target {target:,} parameters, "
            f"nearest shape {shape} has {student:,} (the smallest student, one layer of one query head "
            f"per kv group and one neuron, has {smallest:,}); use a larger ratio")
    layers, heads, neurons = select_parts(parent_config, shape, strategy=strategy, profile=profile, seed=seed)
    return StudentPlan(strategy, ratio, count_embeddings, layers, heads, neurons, target, student, parent_params)
