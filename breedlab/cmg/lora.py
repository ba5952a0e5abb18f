"""Step 3's adapters: attach LoRA to the student, choose what trains, merge for serving.

``lora`` (the paper's) trains adapter matrices only; ``lora+norms`` also
trains RMSNorm gains; ``full`` trains every student weight and attaches no
adapters (the baseline that shows what LoRA-only costs).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from breedlab.cmg.recipe import LORA_TARGETS, CMGRecipe


def prepare_trainable(student: torch.nn.Module, recipe: CMGRecipe) -> torch.nn.Module:
    """Return the model to train: PEFT-wrapped for LoRA modes, the student itself for ``full``."""
    if recipe.trainable == "full":
        for param in student.parameters():
            param.requires_grad_(True)
        return student
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=recipe.lora_rank,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=0.0,  # no dropout: the same seed must give the same child
        target_modules=list(LORA_TARGETS),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(recipe.seed)  # LoRA A matrices are randomly initialised
    model = get_peft_model(student, config)
    if recipe.trainable == "lora+norms":
        for name, param in model.named_parameters():
            if "norm" in name:
                param.requires_grad_(True)
    return model


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def trainable_fraction(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts; LoRA matrices count in both."""
    seen: set[int] = set()
    trainable = total = 0
    for param in model.parameters():
        if id(param) in seen:  # tied embeddings appear twice
            continue
        seen.add(id(param))
        total += param.numel()
        trainable += param.numel() if param.requires_grad else 0
    return trainable, total


def save_adapter(model: torch.nn.Module, directory: Path, base_reference: str) -> bool:
    """Write the PEFT adapter (safetensors + config) if there is one; return whether it did."""
    if not hasattr(model, "peft_config"):
        return False
    model.save_pretrained(directory)
    (directory / "README.md").unlink(missing_ok=True)  # PEFT's template card; the registry writes ours
    config_path = directory / "adapter_config.json"
    config = json.loads(config_path.read_text())
    # PEFT records the temp path it was given; a stable reference keeps the child's hash reproducible.
    config["base_model_name_or_path"] = base_reference
    if isinstance(config.get("target_modules"), list):
        # PEFT holds target_modules as a set, written in string-hash order that changes with
        # PYTHONHASHSEED from process to process: sorted, the child's id is reproducible.
        config["target_modules"] = sorted(config["target_modules"])
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return True


def merged_model(model: torch.nn.Module) -> torch.nn.Module:
    """A plain transformers model with adapters folded into the weights."""
    if hasattr(model, "merge_and_unload"):
        return model.merge_and_unload()
    return model
