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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.cmg.child_files import run_metrics
from breedlab.cmg.inputs import domain_and_general, examples_dataset
from breedlab.cmg.lora import merged_model, prepare_trainable, save_adapter
from breedlab.cmg.recipe import CMGRecipe, RunOptions, TrainingFields
from breedlab.cmg.steps import training_streams
from breedlab.cmg.train import TrainResult, train_child
from breedlab.home import Home
from breedlab.models.io import save_model, weights_digest
from breedlab.operators.skeleton import BreedOutcome, Job, Made, library_versions, operator_key, parent_loader, run_job
from breedlab.operators.table import operator
from breedlab.registry import Artifact, Registry, RegistryError

OPERATOR = "adapter-finetune"
LOSS_FORMULA = "a_ce*CE + a_kd*T^2*KL(softmax(parent/T) || softmax(model/T)) + l_r*L_rehearsal"
ADAPTER_DIR = "adapter"


@dataclass(frozen=True, kw_only=True)
class AdapterFinetuneRecipe(TrainingFields):
    """Everything that determines the adapter: the shared training fields, with the defaults below."""

    domain: str
    """Domain whose ``<domain>/train`` dataset the adapter specialises in."""
    lr: float = 1e-3
    """The parent is intact, unlike a pruned student that must recover."""
    alpha_ce: float = 1.0
    alpha_kd: float = 0.0
    """0 because the model starts as the parent (KL = 0, zero gradient); the term is still logged."""

    def __post_init__(self) -> None:
        if self.teacher not in ("hidden", "live"):
            raise ValueError(f"teacher must be 'hidden' or 'live', got {self.teacher!r}")
        self.to_cmg()  # the CMG recipe checks the rest (temperature, steps, shares)

    def to_cmg(self) -> CMGRecipe:
        """The same run as a CMG recipe: a full-size student (ratio 1), LoRA only."""
        return CMGRecipe(ratio=1.0, strategy="uniform", trainable="lora", **self.to_dict())


def adapter_name(recipe: AdapterFinetuneRecipe) -> str:
    return f"{recipe.domain}-adapter-r{recipe.lora_rank}"


@operator(OPERATOR, recipe=AdapterFinetuneRecipe)
def adapter_finetune(registry: Registry, home: Home, parent_id: str, recipe: AdapterFinetuneRecipe,
                     options: RunOptions = RunOptions()) -> BreedOutcome:
    """Fine-tune LoRA adapters on ``parent_id`` for ``recipe.domain``; register an ``adapter``.

    Resumable like a breed (re-run after Ctrl-C); the same recipe on the same parent and data
    returns the registered artifact without training.
    """
    cmg = recipe.to_cmg()
    parent_art = registry.get(parent_id)
    domain_data, general_data = domain_and_general(registry, recipe.domain, general=recipe.rehearsal_share > 0)
    examples_data = examples_dataset(registry, recipe)
    data = [d for d in (domain_data, general_data, examples_data) if d is not None]
    key = operator_key(OPERATOR, recipe, parent_art.id, data)

    def train(loaded, progress, checkpoint_dir: Path) -> Made:
        parent = loaded["parent"]
        streams, teachers = training_streams(registry, parent_art, parent, loaded["tokenizer"], domain_data,
                                             general_data, cmg, progress, examples_data)
        model = prepare_trainable(_exact_copy(parent, weights_digest(parent)), cmg)
        result = train_child(model, cmg, streams, checkpoint_dir, options, parent=parent,
                             on_step=progress.training("fine-tuning LoRA on the parent"))
        return Made(model, result, {"inputs": {"teachers": [t.id for t in teachers], "key": key}})

    def register(loaded, trained: Made, scratch: Path) -> Artifact:
        inputs = trained.extra["inputs"]
        metrics = adapter_metrics(trained.model, trained.result)  # before writing: merging consumes the adapters
        files = write_adapter(scratch, trained.model, loaded["tokenizer"], trained.result, parent_art)
        return registry.register(
            "adapter", adapter_name(recipe), files, operator=OPERATOR,
            recipe=adapter_recipe(recipe, parent_art, inputs), parents=[parent_art.id],
            data=[d.id for d in data] + inputs["teachers"], metrics=metrics, actor=options.actor, move=True)

    job = Job("adapter", adapter_name(recipe), key, cmg, parent_loader(parent_art), train, register,
              parents=(parent_art.id,))
    return run_job(registry, home, options, job)


def _exact_copy(parent, parent_digest: str):
    """The student: the parent's every weight in tensors of its own (tied embeddings stay tied)."""
    student = copy.deepcopy(parent)
    if weights_digest(student) != parent_digest:
        raise RegistryError("the copy of the parent differs from the parent")
    return student


def write_adapter(directory: Path, model, tokenizer, result: TrainResult, parent: Artifact) -> dict[str, Path]:
    """Save ``adapter/`` (PEFT, base ``breedlab:<parent id>``), the merged model and the curve."""
    model_dir = directory / "model"
    save_adapter(model, model_dir / ADAPTER_DIR, f"breedlab:{parent.id}")
    save_model(merged_model(model), tokenizer, model_dir)  # merging folds the adapters in: do it last
    (model_dir / "training_curve.json").write_text(json.dumps(result.curve, indent=1, sort_keys=True) + "\n")
    return {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()}


def adapter_recipe(recipe: AdapterFinetuneRecipe, parent: Artifact, inputs: dict[str, Any]) -> dict[str, Any]:
    """The full recipe: hyperparameters, what the student is, every input's id and library versions."""
    return {
        **recipe.to_dict(),
        "loss": LOSS_FORMULA,
        "student": "exact copy of the parent (all layers, heads, neurons); LoRA on q,k,v,o,gate,up,down",
        "parent": parent.id,
        "inputs": inputs,
        "versions": library_versions(),
    }


def adapter_metrics(model, result: TrainResult) -> dict[str, Any]:
    """Measured facts about the run; ``final_kd_from_parent`` is the drift from the parent (a_kd = 0)."""
    return run_metrics(model, result)
