"""What a bred child is on disk, and what its manifest says about it.

The child folder loads with plain ``transformers`` (adapters merged into the
weights); ``adapter/`` keeps the LoRA adapter on its own; ``training_curve.json``
and ``selection.json`` record the run and the kept layers/heads/neurons. No
file carries a timestamp, so the same recipe and data give the same hash.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from breedlab.cmg.lora import merged_model, save_adapter, trainable_fraction
from breedlab.cmg.recipe import CMGRecipe
from breedlab.cmg.train import TrainResult
from breedlab.models.io import save_model
from breedlab.registry import Artifact

LOSS_FORMULA = "a_ce*CE + a_kd*T^2*KL(softmax(parent/T) || softmax(child/T)) + l_r*L_rehearsal"
TAIL_STEPS = 10


def child_name(recipe: CMGRecipe) -> str:
    suffix = "" if recipe.trainable == "lora" else f"-{recipe.trainable.replace('+', '-')}"
    return f"{recipe.domain}-p{round(recipe.ratio * 100):02d}-{recipe.strategy}{suffix}"


def write_child(directory: Path, model, tokenizer, plan, result: TrainResult, parent: Artifact) -> dict[str, Path]:
    """Save the merged model, the adapter, the curve and the selection; return name -> path."""
    model_dir = directory / "model"
    has_adapter = save_adapter(model, model_dir / "adapter", f"breedlab:{parent.id}/student")
    save_model(merged_model(model), tokenizer, model_dir)  # merging folds the adapters in: do it last
    # sort_keys: entries restored from a checkpoint must serialise exactly like fresh ones
    (model_dir / "training_curve.json").write_text(json.dumps(result.curve, indent=1, sort_keys=True) + "\n")
    (model_dir / "selection.json").write_text(json.dumps(plan.to_dict(), sort_keys=True) + "\n")
    files = {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()}
    assert has_adapter == any(name.startswith("adapter/") for name in files)
    return files


def write_domain_head(model_dir: Path, domain_data: Artifact, general_data: Artifact | None,
                      validation_data: Artifact | None, recipe: CMGRecipe) -> dict[str, Any]:
    """Fit the domain head on the saved child (what is served), write it beside the weights, and
    return its facts, with the kept ids' coverage of the held-out validation split when there is one."""
    from breedlab.cmg.domain_head import HEAD_FILE, build_domain_head, covered_share, save_head, token_counts
    from breedlab.cmg.inputs import calibration_blocks
    from breedlab.data.read import iter_texts
    from breedlab.models.io import load_model

    model, tokenizer = load_model(model_dir)
    calibration = calibration_blocks(tokenizer, domain_data, general_data, recipe.proxy_tokens * 4,
                                     recipe.seq_len, recipe.calibration_general_share, recipe.data_order)
    tensors, meta = build_domain_head(model, tokenizer, iter_texts(domain_data.path), calibration,
                                      recipe.domain_head_coverage)
    if validation_data is not None:
        held_out = token_counts(tokenizer, iter_texts(validation_data.path))
        meta["validation_coverage"] = round(covered_share(held_out, tensors["kept_ids"].tolist()), 6)
    save_head(tensors, model_dir / HEAD_FILE, meta)
    return meta


def child_recipe(recipe: CMGRecipe, plan, parent: Artifact, inputs: dict[str, Any]) -> dict[str, Any]:
    """The full recipe: hyperparameters, the student plan, and every input's id and library version."""
    import peft
    import torch
    import transformers

    return {
        **recipe.to_dict(),
        "loss": LOSS_FORMULA,
        "parent": parent.id,
        "plan": plan.summary(),
        "selection_sha256": plan.sha256,
        "embeddings_counted": recipe.count_embeddings,
        "inputs": inputs,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "peft": peft.__version__},
    }


def child_metrics(model, plan, result: TrainResult) -> dict[str, Any]:
    """Measured facts about the run; call before ``write_child`` (merging consumes the adapters)."""
    return {
        **run_metrics(model, result),
        "counted_parameters": plan.student_params,
        "counted_target": plan.target_params,
        "counted_parent_parameters": plan.parent_params,
        "embeddings_counted": plan.count_embeddings,
    }


def run_metrics(model, result: TrainResult) -> dict[str, Any]:
    """What any adapter-training operator reports: sizes, tokens, losses and this run's speed."""
    trainable, total = trainable_fraction(model)
    domain_tail = [e for e in result.curve if e["stream"] == "domain"][-TAIL_STEPS:]
    return {
        "parameters": _base_parameters(model),
        "trainable_parameters": trainable,
        "trainable_fraction": trainable / total,
        "steps": result.steps_done,
        "tokens": result.tokens,
        "domain_tokens": result.domain_tokens,
        "rehearsal_tokens": result.rehearsal_tokens,
        "rehearsal_share": result.rehearsal_tokens / max(1, result.tokens),
        "first_loss": result.curve[0]["loss"] if result.curve else None,
        "final_domain_loss": sum(e["loss"] for e in domain_tail) / max(1, len(domain_tail)),
        "final_kd_from_parent": sum(e["kd"] for e in domain_tail) / max(1, len(domain_tail)),
        "train_seconds_last_run": round(result.seconds, 2),
        "train_tokens_per_second": round(result.run_tokens / result.seconds, 1) if result.seconds else None,
        "parent_unchanged": True,
    }


def _base_parameters(model) -> int:
    """All weights of the child as served (tied embeddings once, LoRA matrices excluded: they merge in)."""
    unique = {id(p): p.numel() for name, p in model.named_parameters() if "lora_" not in name}
    return sum(unique.values())
