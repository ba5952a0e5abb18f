"""The one skeleton every model-making operator runs (cmg, adapter-finetune, merge-distill, prune),
so resuming, reuse and the frozen-input promise are written once.

    reuse      the same key (recipe, inputs, data hashed by the operator) -> the registered artifact
    load       the frozen inputs, every file re-hashed; their weights digested
    make       with progress, checkpoints under <home>/cache/breeds/<key[:16]> (a training run resumes)
    check      every frozen input's digest unchanged, else nothing is registered
    register   from a scratch folder, moved into the registry; the checkpoints are removed

An operator supplies a ``Job``: its identity (kind, name, key) and three steps.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.cmg.train import TrainResult
from breedlab.home import Home
from breedlab.models.io import weights_digest
from breedlab.operators.breed_cost import CostMeter, record_cost, training_flops
from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_json


@dataclass
class BreedOutcome:
    """A registered artifact, or where an interrupted run stopped (run again to resume)."""

    child: Artifact | None
    result: TrainResult
    checkpoint_dir: Path
    reused: bool = False


@dataclass
class Made:
    """What a job's ``make`` step returns: the model, its run, and what ``register`` needs besides."""

    model: Any
    result: TrainResult
    extra: dict[str, Any]


@dataclass
class Job:
    kind: str
    name: str
    key: str
    """sha256 of everything that determines the output; recorded as ``recipe.inputs.key``."""
    progress_recipe: CMGRecipe
    load: Callable[[], dict[str, Any]]
    """-> the loaded inputs; ``frozen`` maps id -> every model that must not change."""
    make: Callable[[dict[str, Any], Any, Path], Made]
    """(loaded, progress, checkpoint dir) -> Made."""
    register: Callable[[dict[str, Any], Made, Path], Artifact]
    """(loaded, made, scratch dir) -> the registered artifact."""
    parents: tuple[str, ...] | None = None
    """Reuse also requires these manifest parents (None: the key alone)."""


def parent_loader(parent: Artifact) -> Callable[[], dict[str, Any]]:
    """A job's ``load`` for one frozen input model: its files re-hashed, its weights the only frozen ones."""
    from breedlab.cmg.inputs import load_frozen

    def load() -> dict[str, Any]:
        model, tokenizer = load_frozen(parent)
        return {"frozen": {parent.id: model}, "parent": model, "tokenizer": tokenizer}

    return load


def operator_key(operator: str, recipe, parent_id: str, data: list[Artifact]) -> str:
    """The key of an operator's run on one input model: its name, its recipe, the input and the data."""
    return sha256_json({"operator": operator, "recipe": recipe.to_dict(), "parent": parent_id,
                        "data": [d.id for d in data]})


def find_made(registry: Registry, kind: str, name: str, key: str,
              parents: tuple[str, ...] | None = None) -> Artifact | None:
    """The artifact an earlier run with this key registered, if any (and whole: a gc collected its
    weights, the job breeds it again, and registering restores it under the same id)."""
    for found in registry.find(kind=kind, name=name):
        if parents is not None and found.manifest.parents != parents or registry.collected(found.id):
            continue
        if found.manifest.recipe.get("inputs", {}).get("key") == key:
            return found
    return None


def set_threads(options: RunOptions) -> None:
    if options.threads:
        import torch

        torch.set_num_threads(options.threads)


def run_job(registry: Registry, home: Home, options: RunOptions, job: Job) -> BreedOutcome:
    """Reuse, load, train, check, register (the module docstring); resumable after an interruption."""
    from breedlab.cmg.progress import BreedProgress

    set_threads(options)
    existing = find_made(registry, job.kind, job.name, job.key, job.parents)
    if existing is not None:
        return BreedOutcome(existing, TrainResult(), Path(), reused=True)
    checkpoint_dir = (options.work_dir or home.cache_dir / "breeds") / job.key[:16]
    meter = CostMeter(checkpoint_dir)
    loaded = job.load()
    digests = {ref: weights_digest(model) for ref, model in loaded["frozen"].items()}
    with BreedProgress(options.progress, job.progress_recipe, display=options.display) as progress:
        trained = job.make(loaded, progress, checkpoint_dir)
    changed = [ref[:12] for ref, model in loaded["frozen"].items() if weights_digest(model) != digests[ref]]
    if changed:  # the promise of every operator: its inputs never change
        raise RegistryError(f"weights of {changed} changed during {job.kind} {job.name}; nothing was registered")
    distils = job.progress_recipe.alpha_kd > 0 or job.progress_recipe.hidden_loss != "none"
    cost = meter.stop(trained.result.run_tokens, training_flops(
        trained.model, loaded.get("parent"), trained.result.run_tokens, distils))
    if trained.result.interrupted:
        return BreedOutcome(None, trained.result, checkpoint_dir)
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        artifact = job.register(loaded, trained, Path(scratch))
    record_cost(registry, artifact, cost, actor=options.actor, operator=artifact.manifest.operator)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return BreedOutcome(artifact, trained.result, checkpoint_dir)


def library_versions() -> dict[str, str]:
    """The versions every trained artifact's recipe records."""
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}
