"""What a breed consumes, each found in the registry or made once and registered for reuse:
the frozen parent, the domain and general datasets, the parent's profile and its cached logits."""

from __future__ import annotations

from typing import Any, Callable

from breedlab.cmg.blocks import dataset_blocks, order_record
from breedlab.cmg.recipe import CMGRecipe
from breedlab.models.io import load_model
from breedlab.registry import MODEL_KINDS, Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_file


def load_frozen(artifact: Artifact):
    """Load a model artifact as a frozen parent: every file is re-hashed against its manifest first."""
    if artifact.manifest.kind not in MODEL_KINDS:
        raise RegistryError(f"{artifact.id[:12]} is a {artifact.manifest.kind}, not a model that can parent a child")
    if artifact.manifest.kind == "quantized":
        raise RegistryError(f"{artifact.id[:12]} is quantized for serving (int8 or fp16 weights); breed from its full-precision source")
    expected = {name: entry.sha256 for name, entry in artifact.manifest.files.items()}
    model, tokenizer = load_model(artifact.path, expected_files=expected)
    for param in model.parameters():
        param.requires_grad_(False)
    return model, tokenizer


def dataset(registry: Registry, name: str) -> Artifact:
    found = registry.find(kind="dataset", name=name)
    if not found:
        raise RegistryError(f"no dataset {name!r} registered; run `breedlab data build` first")
    return found[0]


def domain_and_general(registry: Registry, domain: str, *, general: bool) -> tuple[Artifact, Artifact | None]:
    """``<domain>/train``, and ``general/train`` when the run draws on general text (rehearsal, calibration)."""
    return dataset(registry, f"{domain}/train"), dataset(registry, "general/train") if general else None


def examples_dataset(registry: Registry, recipe) -> Artifact | None:
    """``<domain>/examples/train`` when the recipe trains on examples (``examples_share``), else None."""
    if not getattr(recipe, "examples_share", None):
        return None
    found = registry.find(kind="dataset", name=f"{recipe.domain}/examples/train")
    if not found:
        raise RegistryError(f"no examples for {recipe.domain!r}: add them with "
                            f"`breedlab niche add {recipe.domain} --examples FILE --task KIND`")
    return found[0]


def tokenizer_hash(artifact: Artifact) -> str:
    """Teacher caches are only valid for the tokenizer that produced their token ids."""
    path = artifact.path / "tokenizer.json"
    return sha256_file(path) if path.is_file() else artifact.id


def calibration_blocks(tokenizer, data: Artifact, general: Artifact | None, tokens: int, seq_len: int,
                       general_share: float, order: str = "shuffled"):
    """Domain blocks, plus ``general_share`` of ``tokens`` from general text (cross-calibration)."""
    import torch

    general_tokens = round(tokens * general_share) if general is not None else 0
    parts = [dataset_blocks(data.path, tokenizer, seq_len, tokens - general_tokens, order)]
    if general_tokens >= seq_len:
        parts.append(dataset_blocks(general.path, tokenizer, seq_len, general_tokens, order))
    return torch.cat(parts)


def ensure_profile(registry: Registry, parent_art: Artifact, parent, tokenizer, data: Artifact,
                   recipe: CMGRecipe, progress: Callable[[int], None] | None,
                   general: Artifact | None = None) -> tuple[Artifact, Any]:
    """The parent's profile on the domain (mixed with ``calibration_general_share`` of general text)."""
    from breedlab.cmg.profile import load_profile, profile_model, register_profile

    share = recipe.calibration_general_share if general is not None else 0.0
    profile_recipe = {"tokens": recipe.profile_tokens, "seq_len": recipe.seq_len,
                      "tokenizer": tokenizer_hash(parent_art),
                      "measure": "residual-contribution+block-influence", "general_share": share,
                      **order_record(recipe.data_order)}
    data_ids = (data.id, general.id) if share else (data.id,)
    name = f"{recipe.domain}/profile"
    for existing in registry.find(kind="profile", name=name):
        if existing.manifest.parents == (parent_art.id,) and existing.manifest.data == data_ids \
                and existing.manifest.recipe == profile_recipe:
            return existing, load_profile(existing.path / "profile.safetensors")
    blocks = calibration_blocks(tokenizer, data, general, recipe.profile_tokens, recipe.seq_len, share,
                                recipe.data_order)
    profile = profile_model(parent, blocks, progress=progress)
    artifact = register_profile(registry, profile, name=name, parent_id=parent_art.id, data_ids=list(data_ids),
                                recipe=profile_recipe)
    return artifact, profile


def ensure_teacher(registry: Registry, parent_art: Artifact, parent, tokenizer, data: Artifact,
                   recipe: CMGRecipe, tokens: int, progress: Callable[[int], None] | None) -> Artifact:
    """The parent's view of ``tokens`` of ``data`` (hidden states or top-k logits), computed once."""
    from breedlab.cmg.teacher import (
        compute_hidden_cache,
        compute_teacher_cache,
        find_teacher_cache,
        register_teacher_cache,
    )

    cache_recipe = {"format": recipe.teacher, "temperature": recipe.temperature, "seq_len": recipe.seq_len,
                    "tokens": tokens, "tokenizer": tokenizer_hash(parent_art)}
    if recipe.teacher == "topk":
        cache_recipe["k"] = recipe.teacher_topk
    cache_recipe.update(order_record(recipe.data_order))
    found = find_teacher_cache(registry, parent_id=parent_art.id, data_id=data.id, recipe=cache_recipe)
    if found is not None:
        return found
    blocks = dataset_blocks(data.path, tokenizer, recipe.seq_len, tokens, recipe.data_order)
    if recipe.teacher == "hidden":
        tensors = compute_hidden_cache(parent, blocks, progress=progress)
        name = f"{data.manifest.name}/teacher-hidden"
    else:
        tensors = compute_teacher_cache(parent, blocks, k=recipe.teacher_topk, temperature=recipe.temperature,
                                        progress=progress)
        name = f"{data.manifest.name}/teacher-top{recipe.teacher_topk}"
    return register_teacher_cache(registry, tensors, name=name, parent_id=parent_art.id, data_id=data.id,
                                  recipe=cache_recipe)
