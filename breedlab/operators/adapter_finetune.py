"""The ``adapter-finetune`` operator: LoRA on the parent itself, no size change.

The baseline every CMG child must beat: the student is an exact copy of the
parent (every layer, head and neuron), so only the adapters change it. It runs
the CMG's own machinery rather than a copy of it: the recipe below maps onto a
``CMGRecipe`` (``to_cmg``), the training sources come from the CMG's stream
builder, and ``cmg/train.py:train_child`` runs the loop, so checkpoints,
resuming, rehearsal and the loss are the CMG's, step for step.

Two departures from a CMG breed, both in the recipe's defaults:
  * ``alpha_kd = 0``: a model distilled from itself learns nothing at step 0
    (KL = 0, zero gradient), so the loss is CE on the domain; the KD term is
    still computed and logged as ``kd`` in the curve, where it measures how far
    the fine-tune has drifted from the parent (a free retention signal);
  * ``lr = 1e-3``: the parent is intact, unlike a pruned student that must recover.

The artifact (kind ``adapter``) holds the merged model at its root, so it loads,
serves and evaluates like any model (and can parent a child or a quantization),
and the PEFT adapter in ``adapter/`` (base ``breedlab:<parent id>``). Not at the root
on purpose: ``from_pretrained`` on a folder with a root ``adapter_config.json``
loads the weights beside it and then applies the adapter on top, so the merged
LoRA would count twice (measured on the pico: logits off by 1.85, silently).
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from breedlab.cmg.breed import BreedOutcome, training_streams
from breedlab.cmg.child_files import run_metrics
from breedlab.cmg.inputs import dataset, load_frozen
from breedlab.cmg.lora import merged_model, prepare_trainable, save_adapter
from breedlab.cmg.progress import BreedProgress
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.cmg.train import TrainResult, train_child
from breedlab.home import Home
from breedlab.models.io import save_model, weights_digest
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_json

OPERATOR = "adapter-finetune"
LOSS_FORMULA = "a_ce*CE + a_kd*T^2*KL(softmax(parent/T) || softmax(model/T)) + l_r*L_rehearsal"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True)
class AdapterFinetuneRecipe:
    """Everything that determines the adapter. Fields mirror ``CMGRecipe``'s where they mean the same."""

    domain: str
    """Domain whose ``<domain>/train`` dataset the adapter specialises in."""
    steps: int = 200
    """Optimiser steps (``tokens`` overrides it when set)."""
    tokens: int | None = None
    """Training-token budget; steps = ceil(tokens / (batch_size * seq_len))."""
    batch_size: int = 8
    seq_len: int = 256
    lr: float = 1e-3
    """Peak learning rate (linear warm-up, then cosine to 10%)."""
    warmup_steps: int = 10
    grad_clip: float = 1.0
    alpha_ce: float = 1.0
    """a_ce: weight of cross-entropy on the true next token."""
    alpha_kd: float = 0.0
    """a_kd: weight of T^2 * KL(parent_T || model_T); 0 because the model starts as the parent."""
    temperature: float = 4.0
    """T of the logged (and, if a_kd > 0, trained) KL term."""
    rehearsal_weight: float = 0.10
    """l_r: weight of the loss on general-data batches."""
    rehearsal_share: float = 0.05
    """Share of training batches drawn from the general corpus, interleaved evenly."""
    lora_rank: int = 16
    lora_alpha: int = 32
    teacher: str = "hidden"
    """Where the parent's logits for the KD term come from: hidden (cached once per dataset and shared
    with CMG breeds of the same seq_len and pools) | live (the parent runs on every batch)."""
    pool_tokens: int = 65_536
    """Domain tokens training batches are drawn from."""
    rehearsal_pool_tokens: int = 32_768
    """General-corpus tokens rehearsal batches are drawn from."""
    data_order: str = "shuffled"
    """How a token budget samples a split (``cmg/blocks.py``)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.teacher not in ("hidden", "live"):
            raise ValueError(f"teacher must be 'hidden' or 'live', got {self.teacher!r}")
        self.to_cmg()  # the CMG recipe checks the rest (temperature, steps, shares)

    def to_cmg(self) -> CMGRecipe:
        """The same run as a CMG recipe: a full-size student (ratio 1), LoRA only."""
        return CMGRecipe(ratio=1.0, strategy="uniform", trainable="lora", **asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AdapterFinetuneRecipe:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown recipe fields: {sorted(unknown)}")
        return cls(**values)


def adapter_name(recipe: AdapterFinetuneRecipe) -> str:
    return f"{recipe.domain}-adapter-r{recipe.lora_rank}"


@operator(OPERATOR)
def adapter_finetune(registry: Registry, home: Home, parent_id: str, recipe: AdapterFinetuneRecipe,
                     options: RunOptions = RunOptions()) -> BreedOutcome:
    """Fine-tune LoRA adapters on ``parent_id`` for ``recipe.domain``; register an ``adapter``.

    Resumable like a breed (re-run after Ctrl-C); the same recipe on the same parent and data
    returns the registered artifact without training.
    """
    import torch

    if options.threads:
        torch.set_num_threads(options.threads)
    cmg = recipe.to_cmg()
    parent_art = registry.get(parent_id)
    domain_data = dataset(registry, f"{recipe.domain}/train")
    general_data = dataset(registry, "general/train") if recipe.rehearsal_share > 0 else None
    data = [d for d in (domain_data, general_data) if d is not None]
    key = sha256_json({"operator": OPERATOR, "recipe": recipe.to_dict(), "parent": parent_art.id,
                       "data": [d.id for d in data]})
    existing = _already_made(registry, recipe, parent_art, key)
    if existing is not None:
        return BreedOutcome(existing, TrainResult(), Path(), reused=True)

    parent, tokenizer = load_frozen(parent_art)
    parent_digest = weights_digest(parent)
    checkpoint_dir = (options.work_dir or home.cache_dir / "breeds") / key[:16]
    with BreedProgress(options.progress, cmg, display=options.display) as progress:
        streams, teachers = training_streams(registry, parent_art, parent, tokenizer, domain_data,
                                             general_data, cmg, progress)
        model = prepare_trainable(_exact_copy(parent, parent_digest), cmg)
        result = train_child(model, cmg, streams, checkpoint_dir, options, parent=parent,
                             on_step=progress.training("fine-tuning LoRA on the parent"))
    if weights_digest(parent) != parent_digest:  # the copy trained, never the parent
        raise RegistryError("the parent's weights changed during fine-tuning; nothing was registered")
    if result.interrupted:
        return BreedOutcome(None, result, checkpoint_dir)

    inputs = {"teachers": [t.id for t in teachers], "key": key}
    artifact = _register(registry, home, model, tokenizer, result, parent_art, recipe,
                         data_ids=[d.id for d in data] + inputs["teachers"], inputs=inputs, actor=options.actor)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return BreedOutcome(artifact, result, checkpoint_dir)


def _already_made(registry: Registry, recipe: AdapterFinetuneRecipe, parent_art: Artifact,
                  key: str) -> Artifact | None:
    for found in registry.find(kind="adapter", name=adapter_name(recipe)):
        if found.manifest.parents == (parent_art.id,) and found.manifest.recipe.get("inputs", {}).get("key") == key:
            return found
    return None


def _exact_copy(parent, parent_digest: str):
    """The student: the parent's every weight in tensors of its own (tied embeddings stay tied)."""
    student = copy.deepcopy(parent)
    if weights_digest(student) != parent_digest:
        raise RegistryError("the copy of the parent differs from the parent")
    return student


def _register(registry: Registry, home: Home, model, tokenizer, result: TrainResult, parent_art: Artifact,
              recipe: AdapterFinetuneRecipe, *, data_ids: list[str], inputs: dict[str, Any],
              actor: str) -> Artifact:
    metrics = adapter_metrics(model, result)  # before writing: merging consumes the adapters
    with tempfile.TemporaryDirectory(dir=home.cache_dir) as scratch:
        files = write_adapter(Path(scratch), model, tokenizer, result, parent_art)
        return registry.register(
            "adapter", adapter_name(recipe), files, operator=OPERATOR,
            recipe=adapter_recipe(recipe, parent_art, inputs), parents=[parent_art.id],
            data=data_ids, metrics=metrics, actor=actor, move=True,
        )


def write_adapter(directory: Path, model, tokenizer, result: TrainResult, parent: Artifact) -> dict[str, Path]:
    """Save ``adapter/`` (PEFT, base ``breedlab:<parent id>``), the merged model and the curve."""
    model_dir = directory / "model"
    save_adapter(model, model_dir / ADAPTER_DIR, f"breedlab:{parent.id}")
    save_model(merged_model(model), tokenizer, model_dir)  # merging folds the adapters in: do it last
    (model_dir / "training_curve.json").write_text(json.dumps(result.curve, indent=1, sort_keys=True) + "\n")
    return {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()}


def adapter_recipe(recipe: AdapterFinetuneRecipe, parent: Artifact, inputs: dict[str, Any]) -> dict[str, Any]:
    """The full recipe: hyperparameters, what the student is, every input's id and library versions."""
    import peft
    import torch
    import transformers

    return {
        **recipe.to_dict(),
        "loss": LOSS_FORMULA,
        "student": "exact copy of the parent (all layers, heads, neurons); LoRA on q,k,v,o,gate,up,down",
        "parent": parent.id,
        "inputs": inputs,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }


def adapter_metrics(model, result: TrainResult) -> dict[str, Any]:
    """Measured facts about the run; ``final_kd_from_parent`` is the drift from the parent (a_kd = 0)."""
    return run_metrics(model, result)
