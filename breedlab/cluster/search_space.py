"""A recipe search's space: a typed, validated YAML file.

    operator: cmg               # the operator every trial runs (cmg or adapter-finetune)
    preset: compact             # cmg only: the named recipe under the fields
    fixed:                      # recipe fields every trial shares (the budget, pools, ...)
      tokens: 16384
    space:                      # the searched fields: one distribution each
      ratio: {choice: [0.5, 0.6, 0.7, 0.8]}
      strategy: {choice: [mixed, width]}
      temperature: {choice: [1.0, 2.0]}
      alpha_kd: {uniform: [0.5, 0.9]}
      lr: {loguniform: [1.0e-4, 1.0e-3]}
      trainable: {choice: [full, lora]}
    trials: 8                   # sampled configurations
    seed: 0                     # the sampler's seed: the same file samples the same trials
    scheduler: {grace_steps: 2, reduction_factor: 2}   # ASHA on the validation curve
    report_every: 2             # steps between validation reports
    validation_tokens: 4096     # tokens of <niche>/validation each report reads

Every field of ``fixed`` and ``space`` is checked against the operator's recipe class (so is every
value a ``choice`` lists) before a trial starts; ``domain`` comes from ``--niche``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from breedlab.cluster.recipes import CandidateRecipe
from breedlab.typed_config import expect_mapping, from_mapping, read_yaml

DISTRIBUTIONS = ("choice", "uniform", "loguniform")
OPERATORS = ("cmg", "adapter-finetune")


@dataclass(frozen=True)
class Scheduler:
    grace_steps: int = 2
    """Steps every trial gets before ASHA may stop it."""
    reduction_factor: int = 2
    """ASHA keeps the best 1/reduction_factor of the trials at each rung."""


@dataclass(frozen=True)
class SearchSpace:
    space: dict[str, Any]
    operator: str = "cmg"
    preset: str | None = None
    fixed: dict[str, Any] = field(default_factory=dict)
    trials: int = 8
    seed: int = 0
    scheduler: Scheduler = Scheduler()
    report_every: int = 2
    validation_tokens: int = 4096

    def candidate(self, name: str, sampled: dict[str, Any]) -> CandidateRecipe:
        """One trial's recipe: the fixed fields with the sampled ones on top."""
        return CandidateRecipe(name, self.operator, self.preset, {**self.fixed, **sampled})

    def to_dict(self) -> dict[str, Any]:
        return {"operator": self.operator, "preset": self.preset, "fixed": self.fixed, "space": self.space,
                "trials": self.trials, "seed": self.seed, "report_every": self.report_every,
                "validation_tokens": self.validation_tokens, "scheduler": vars(self.scheduler).copy()}


def load_space(path: Path | str) -> SearchSpace:
    """The space of ``path``, every field and value checked (a ``ValueError`` naming the file and field)."""
    body = expect_mapping(read_yaml(path), str(path))
    scheduler = from_mapping(Scheduler, body.pop("scheduler", {}) or {}, f"{path}: scheduler")
    space = from_mapping(SearchSpace, {**body, "scheduler": scheduler}, str(path))
    check_space(space, str(path))
    return space


def check_space(space: SearchSpace, where: str) -> None:
    if space.operator not in OPERATORS:
        raise ValueError(f"{where}: operator must be one of {OPERATORS}, not {space.operator!r}")
    if not space.space:
        raise ValueError(f"{where}: 'space' names no field to search")
    if space.trials < 1 or space.report_every < 1 or space.validation_tokens < 1:
        raise ValueError(f"{where}: trials, report_every and validation_tokens must be positive")
    if space.scheduler.grace_steps < 1 or space.scheduler.reduction_factor < 2:
        raise ValueError(f"{where}: scheduler needs grace_steps >= 1 and reduction_factor >= 2")
    overlap = set(space.space) & set(space.fixed)
    if overlap:
        raise ValueError(f"{where}: {sorted(overlap)} are both fixed and searched")
    for name, spec in space.space.items():
        for value in example_values(name, spec, where):
            try:
                space.candidate("check", {name: value}).recipe_for("check")
            except (KeyError, ValueError, TypeError) as error:
                raise ValueError(f"{where}: space.{name} = {value!r}: {error}") from None


def example_values(name: str, spec: Any, where: str) -> list[Any]:
    """The values a distribution can take at its edges (each one is checked by the recipe class)."""
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in DISTRIBUTIONS:
        raise ValueError(f"{where}: space.{name} must be one of {{choice: [...]}}, {{uniform: [low, high]}}, "
                         f"{{loguniform: [low, high]}}")
    kind, values = next(iter(spec.items()))
    if not isinstance(values, list) or not values:
        raise ValueError(f"{where}: space.{name}.{kind} needs a non-empty list")
    if kind == "choice":
        return values
    if len(values) != 2 or not all(isinstance(v, (int, float)) for v in values) or not values[0] < values[1]:
        raise ValueError(f"{where}: space.{name}.{kind} needs [low, high] numbers with low < high")
    if kind == "loguniform" and values[0] <= 0:
        raise ValueError(f"{where}: space.{name}.loguniform needs low > 0")
    return [float(values[0]), float(values[1])]


def tune_space(space: SearchSpace) -> dict[str, Any]:
    """The space as Ray Tune distributions."""
    from ray import tune

    made = {}
    for name, spec in space.space.items():
        kind, values = next(iter(spec.items()))
        made[name] = tune.choice(values) if kind == "choice" else \
            tune.uniform(*values) if kind == "uniform" else tune.loguniform(*values)
    return made


def total_steps(space: SearchSpace, niche: str, sampled: dict[str, Any]) -> int:
    recipe = space.candidate("steps", sampled).recipe_for(niche)
    return int(recipe.total_steps)


def max_steps(space: SearchSpace, niche: str) -> int:
    """The most steps any trial can run (ASHA's max_t). A budget is monotone in each field (tokens,
    batch size, sequence length), so each field's extremes are enough: a numeric choice contributes its
    least and greatest value, a range its two ends, anything else every value it lists."""
    edges = [{}]
    for name, spec in space.space.items():
        kind, values = next(iter(spec.items()))
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        options = [min(values), max(values)] if numeric else values
        edges = [{**edge, name: value} for edge in edges for value in dict.fromkeys(options)]
    return max(total_steps(space, niche, edge) for edge in edges)
