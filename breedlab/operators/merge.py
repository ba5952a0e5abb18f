"""The ``merge`` operator: several fine-tunes of one base folded into one model, by weight arithmetic.

Two built-in methods (plug-ins in ``merge_methods.py``), both over the state dicts of models that share the base's
architecture, every tensor name and shape, and the tokenizer:

* ``linear``: ``theta = sum_i w_i * theta_i / sum_i w_i`` (a weighted average; equal weights by default).
* ``ties`` (Yadav et al. 2023, "TIES-Merging", Algorithm 1), per tensor, with task vectors
  ``tau_i = theta_i - theta_base``:
    1. trim: keep the ``ceil(density * n)`` largest-magnitude entries of each ``tau_i``, zero the rest;
    2. elect: ``gamma = sign(sum_i w_i * trimmed_i)``, the sign with the larger total magnitude;
    3. disjoint mean: average, per entry, only the trimmed values whose sign is ``gamma``;
    4. ``theta = theta_base + lambda * merged`` (``lambda`` = the recipe's ``scaling``).
  Trimming is per tensor, as mergekit does it (the paper trims the whole flattened vector): every
  matrix keeps the same share, and memory stays one tensor at a time. Weights scale each trimmed task
  vector before the election and weigh the disjoint mean (all 1: the paper exactly).

``merge_problems`` names every reason a set of models cannot be merged this way
(architecture or shape-setting config fields, tensor names or shapes, tokenizer,
lineage); the operator refuses with ``IncompatibleMerge`` carrying that list and
registers nothing. Incompatible specialists can still be merged by distilling
both into one child: ``operators/merge_distill.py``.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from breedlab.cmg.inputs import load_frozen
from breedlab.cmg.recipe import RunOptions
from breedlab.home import Home
from breedlab.models.io import save_model, weights_digest
from breedlab.operators.merge_checks import merge_problems, model_domains
from breedlab.operators.merge_methods import METHODS, linear_merge, merge_method, ties_merge, trim
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry, RegistryError

__all__ = ["METHODS", "IncompatibleMerge", "MergeRecipe", "linear_merge", "merge", "merge_problems", "model_domains",
           "ties_merge", "trim"]

OPERATOR = "merge"


class IncompatibleMerge(RegistryError):
    """The models cannot be weight-merged; ``problems`` names every reason."""

    def __init__(self, problems: list[str]):
        super().__init__("cannot merge: " + "; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class MergeRecipe:
    """What to merge and how; the base is the operator's ``parent_id``."""

    models: tuple[str, ...]
    """Artifact ids (or unique prefixes) of the models to merge, at least two (one may repeat)."""
    method: str = "ties"
    """linear | ties | dare (see the module docstring and ``merge_methods.py``)."""
    weights: tuple[float, ...] | None = None
    """One non-negative weight per model (None: all equal)."""
    density: float = 0.2
    """TIES: share of each task vector's entries kept, by magnitude, per tensor; DARE: the keep probability."""
    scaling: float = 1.0
    """TIES, DARE: lambda in theta_base + lambda * merged task vector."""
    seed: int = 0
    """DARE's drop masks (one per tensor, from this seed and the tensor's name); linear and TIES draw nothing."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "models", tuple(self.models))
        if self.weights is not None:
            object.__setattr__(self, "weights", tuple(float(w) for w in self.weights))
        if len(self.models) < 2:
            raise ValueError("a merge needs at least two models")
        merge_method(self.method)  # an unknown method is refused with the known ones
        if self.weights is not None and (len(self.weights) != len(self.models) or min(self.weights) < 0
                                         or sum(self.weights) <= 0):
            raise ValueError("weights must be one non-negative number per model, not all zero")
        if not 0.0 < self.density <= 1.0:
            raise ValueError(f"density must be in (0, 1], got {self.density}")

    def model_weights(self) -> tuple[float, ...]:
        return self.weights if self.weights is not None else (1.0,) * len(self.models)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "models": list(self.models),
                "weights": None if self.weights is None else list(self.weights)}


@dataclass
class MergeOutcome:
    child: Artifact
    reused: bool = False


def merge_state(base: dict[str, torch.Tensor], states: list[dict[str, torch.Tensor]],
                recipe: MergeRecipe) -> dict[str, torch.Tensor]:
    """Every tensor merged by the recipe's method; non-float tensors must agree and are copied."""
    weights, merged = recipe.model_weights(), {}
    for name, base_tensor in base.items():
        tensors = [state[name] for state in states]
        if not base_tensor.is_floating_point():
            if any(not torch.equal(t, base_tensor) for t in tensors):
                raise IncompatibleMerge([f"integer tensor {name} differs between the models"])
            merged[name] = base_tensor.clone()
        else:
            merged[name] = merge_method(recipe.method).merge(base_tensor, tensors, weights, recipe, name=name)
    return merged


@operator(OPERATOR, recipe=MergeRecipe)
def merge(registry: Registry, home: Home, parent_id: str, recipe: MergeRecipe,
          options: RunOptions = RunOptions()) -> MergeOutcome:
    """Merge ``recipe.models`` (fine-tunes of the base ``parent_id``); register a ``merged`` model.

    Refuses incompatible models with IncompatibleMerge before anything is written.
    The same recipe on the same models and base returns the same artifact.
    """
    if options.threads:
        torch.set_num_threads(options.threads)
    base_art = registry.get(parent_id)
    models = [registry.get(ref) for ref in recipe.models]
    problems = merge_problems(registry, [m.id for m in models], base_art.id)
    if problems:
        raise IncompatibleMerge(problems)
    full = merged_recipe(recipe, models, base_art)
    name = merged_name(models, recipe.method)
    for found in registry.find(kind="merged", name=name):
        if found.manifest.recipe == full and found.manifest.operator == OPERATOR:
            return MergeOutcome(found, reused=True)

    base, tokenizer = load_frozen(base_art)  # every file re-hashed against its manifest
    loaded = [load_frozen(m)[0] for m in models]
    digests = [weights_digest(m) for m in (base, *loaded)]
    state = merge_state(base.state_dict(), [m.state_dict() for m in loaded], recipe)
    metrics = _metrics(base.state_dict(), state, recipe)
    if [weights_digest(m) for m in (base, *loaded)] != digests:
        raise RegistryError("an input's weights changed while merging; nothing was registered")
    target = loaded[0]  # same config as every other model (checked): it becomes the merged model
    target.load_state_dict(state)
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        folder = save_model(target, tokenizer, Path(scratch) / "model")
        files = {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}
        artifact = registry.register("merged", name, files, operator=OPERATOR, recipe=full,
                                     parents=list(dict.fromkeys(m.id for m in models)), metrics=metrics,
                                     actor=options.actor, move=True)
    return MergeOutcome(artifact)


def merged_name(models: list[Artifact], method: str) -> str:
    return f"{'+'.join(model_domains(models))}-{method}"


def merged_recipe(recipe: MergeRecipe, models: list[Artifact], base: Artifact) -> dict[str, Any]:
    """The full recipe: the method and its settings, every input's id, the domains it now serves."""
    domains = model_domains(models)
    return {**recipe.to_dict(), "models": [m.id for m in models], "base": base.id,
            "domains": domains, "domain": "+".join(domains),
            "formula": merge_method(recipe.method).formula,
            "versions": {"torch": torch.__version__}}


def _metrics(base: dict[str, torch.Tensor], merged: dict[str, torch.Tensor], recipe: MergeRecipe) -> dict:
    """How far the merge moved from the base: the largest change and the share of entries changed."""
    changed = total = 0
    largest = 0.0
    for name, tensor in merged.items():
        if tensor.is_floating_point():
            delta = (tensor.double() - base[name].double()).abs()
            changed += int((delta > 0).sum())
            total += delta.numel()
            largest = max(largest, float(delta.max()))
    return {"method": recipe.method, "max_abs_change_from_base": largest,
            "changed_fraction": changed / max(1, total), "inputs_unchanged": True,
            "tensors": len(merged), "parameters_merged": total}
