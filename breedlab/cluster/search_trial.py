"""One trial of a recipe search, as Ray Tune runs it: a breed that reports its validation curve.

The trial breeds in a home of its own (``tasks.breed_task``), keyed by its recipe and its Tune trial id,
so a trial Tune restarts after its worker died resumes from its checkpoints. Every ``report_every``
steps it reads the NLL of the model being trained on ``<niche>/validation`` (the validation split
only: the seed holds no test split) and reports it; ASHA decides from those reports.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from breedlab.cluster.search_space import Scheduler, SearchSpace
from breedlab.cluster.tasks import BreedSpec, breed_task
from breedlab.registry import Registry
from breedlab.registry.atomic import atomic_write_bytes
from breedlab.registry.canonical import sha256_json

SHIPMENT_FILE = "shipment.json"


def space_from_dict(values: dict[str, Any]) -> SearchSpace:
    return SearchSpace(**{**values, "scheduler": Scheduler(**values["scheduler"])})


def run_trial(config: dict[str, Any], *, template: BreedSpec, space: dict[str, Any], niche: str, board: Any,
              storage: str) -> None:
    from ray import tune

    searched = space_from_dict(space)
    trial_id = tune.get_context().get_trial_id()
    label = f"{niche} trial {trial_id[-5:]}: " + " ".join(f"{k}={_short(v)}" for k, v in sorted(config.items()))
    recipe = searched.candidate(label, config).recipe_for(niche)
    key = sha256_json({"breed": recipe.to_dict(), "source": template.source, "trial": trial_id})
    spec = replace(template, key=key, label=label, recipe=recipe.to_dict(), work_root=storage)
    home_root = Path(storage) / key[:16]
    curve = ValidationCurve(home_root, niche, recipe, searched, template.source, key)
    shipment = breed_task(spec, board, on_model_step=curve.on_step)
    if curve.last is None:  # a restarted trial whose child was already registered: no step ran this time
        curve.last = curve.of_child(shipment["child"])
    atomic_write_bytes(home_root / SHIPMENT_FILE, json.dumps(shipment).encode())
    # the last report only now: a stop at the final rung cannot cut off a child before its files exist
    tune.report({"val_nll": curve.last, "step": recipe.total_steps, "finished": True, "key": key})


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


class ValidationCurve:
    """The trial's reports: validation NLL of the model under training, every ``report_every`` steps."""

    def __init__(self, home_root: Path, niche: str, recipe, space: SearchSpace, source: str, key: str):
        self.home_root, self.niche, self.recipe, self.space, self.source = home_root, niche, recipe, space, source
        self.key = key
        self.blocks = None
        self.last: float | None = None

    def on_step(self, step: int, model) -> None:
        from ray import tune

        final = step == self.recipe.total_steps
        if step % self.space.report_every and not final:
            return
        self.last = validation_nll(model, self.validation_blocks())
        if not final:
            tune.report({"val_nll": self.last, "step": step, "finished": False, "key": self.key})

    def of_child(self, child_id: str) -> float:
        """The validation NLL of the registered child itself (its files, as the head will hold them)."""
        from breedlab.models.io import load_model

        registry = Registry.open(self.home_root / "registry")
        model, _ = load_model(registry.get(child_id).path)
        return validation_nll(model, self.validation_blocks())

    def validation_blocks(self):
        if self.blocks is None:
            from transformers import AutoTokenizer

            from breedlab.cmg.blocks import dataset_blocks

            registry = Registry.open(self.home_root / "registry")
            validation = registry.find(kind="dataset", name=f"{self.niche}/validation")[0]
            tokenizer = AutoTokenizer.from_pretrained(registry.get(self.source).path)
            self.blocks = dataset_blocks(validation.path, tokenizer, self.recipe.seq_len, self.space.validation_tokens,
                                         "shuffled")
        return self.blocks


def validation_nll(model, blocks) -> float:
    """Mean next-token NLL (nats) of ``blocks`` under ``model``, in eval mode without gradients."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(blocks), 8):
            batch = blocks[start:start + 8].long()
            logits = model(input_ids=batch).logits[:, :-1].float()
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1),
                                                     reduction="sum")
            total, count = total + float(loss), count + batch[:, 1:].numel()
    return total / max(count, 1)
