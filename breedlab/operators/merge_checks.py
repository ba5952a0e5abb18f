"""Whether models can be merged weight by weight, and what they have in common.

A weight merge is arithmetic on tensors of the same name and shape that mean
the same thing. So ``merge_problems`` compares every model with the base the
task vectors are measured against, and names each difference that breaks it:

* architecture: ``model_type`` / ``architectures`` and the config fields that
  set tensor shapes (``SHAPE_FIELDS``);
* tensors: names and shapes, read from the safetensors headers (no weights loaded);
* tokenizer: the files that fix token ids (``TOKENIZER_FILES``), by their
  recorded sha256. ``tokenizer_config.json`` is left out on purpose: transformers
  rewrites it on every save (load-time keys, versions) without changing an id;
* lineage: each model must be the base or descend from it (registry parents);
* kind: an int8 ``quantized`` model has no float weights to average.
"""

from __future__ import annotations

import json
from collections import deque

from breedlab.registry import MODEL_KINDS, Artifact, Registry
from breedlab.registry.canonical import sha256_json

SHAPE_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "vocab_size", "tie_word_embeddings", "attention_bias",
                "mlp_bias")
ARCHITECTURE_FIELDS = ("model_type", "architectures")
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer.model", "added_tokens.json",
                   "special_tokens_map.json")
EXAMPLES = 3  # differing tensors named per problem; the count says how many there are in all


def merge_problems(registry: Registry, model_ids: list[str], base_id: str) -> list[str]:
    """Every reason ``model_ids`` cannot be weight-merged over ``base_id``; empty when they can."""
    base = registry.get(base_id)
    problems = _kind_problems(base, "the base")
    if problems:
        return problems
    base_config, base_shapes, base_tokenizer = config_of(base), tensor_shapes(base), tokenizer_digest(base)
    for model in [registry.get(ref) for ref in dict.fromkeys(registry.get(r).id for r in model_ids)]:
        label = f"{model.manifest.kind} {model.manifest.name} {model.id[:12]}"
        kind = _kind_problems(model, label)
        if kind:
            problems += kind
            continue
        problems += _config_problems(label, config_of(model), base_config)
        problems += _tensor_problems(label, tensor_shapes(model), base_shapes)
        if tokenizer_digest(model) != base_tokenizer:
            problems.append(f"{label}: tokenizer differs from the base's (token-id files hash differently)")
        if model.id != base.id and base.id not in ancestors(registry, model.id):
            problems.append(f"{label}: lineage: does not descend from the base {base.id[:12]}")
    return problems


def _kind_problems(artifact: Artifact, label: str) -> list[str]:
    if artifact.manifest.kind not in MODEL_KINDS:
        return [f"{label}: is a {artifact.manifest.kind}, not a model"]
    if artifact.manifest.kind == "quantized":
        return [f"{label}: is int8-quantized; merge its full-precision source"]
    return []


def config_of(artifact: Artifact) -> dict:
    return json.loads((artifact.path / "config.json").read_text(encoding="utf-8"))


def _config_problems(label: str, config: dict, base: dict) -> list[str]:
    problems = []
    for field in ARCHITECTURE_FIELDS:
        if config.get(field) != base.get(field):
            problems.append(f"{label}: architecture: {field} {config.get(field)!r} vs the base's {base.get(field)!r}")
    differing = [f"{f} {config.get(f)} vs {base.get(f)}" for f in SHAPE_FIELDS if config.get(f) != base.get(f)]
    if differing:
        problems.append(f"{label}: config fields that shape the weights differ from the base's: {', '.join(differing)}")
    return problems


def tensor_shapes(artifact: Artifact) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from the top-level safetensors headers (``adapter/`` copies are not weights)."""
    from safetensors import safe_open

    shapes = {}
    for name in sorted(n for n in artifact.manifest.files if n.endswith(".safetensors") and "/" not in n):
        with safe_open(str(artifact.path / name), framework="pt") as handle:
            for key in handle.keys():
                shapes[key] = tuple(handle.get_slice(key).get_shape())
    return shapes


def _tensor_problems(label: str, shapes: dict, base: dict) -> list[str]:
    problems = []
    missing, extra = sorted(set(base) - set(shapes)), sorted(set(shapes) - set(base))
    if missing or extra:
        problems.append(f"{label}: tensor names differ from the base's: {len(missing)} missing "
                        f"(e.g. {missing[:EXAMPLES]}), {len(extra)} extra (e.g. {extra[:EXAMPLES]})")
    wrong = [f"{n} {shapes[n]} vs {base[n]}" for n in sorted(set(shapes) & set(base)) if shapes[n] != base[n]]
    if wrong:
        problems.append(f"{label}: tensor shapes differ from the base's on {len(wrong)} tensors "
                        f"(e.g. {'; '.join(wrong[:EXAMPLES])})")
    return problems


def tokenizer_digest(artifact: Artifact) -> str:
    """sha256 over the recorded hashes of the files that fix token ids (see the module docstring)."""
    files = artifact.manifest.files
    return sha256_json({name: files[name].sha256 for name in TOKENIZER_FILES if name in files})


def ancestors(registry: Registry, artifact_id: str) -> list[str]:
    """Every ancestor id through registry parents, nearest first (breadth first, each once)."""
    seen, order, queue = {artifact_id}, [], deque([artifact_id])
    while queue:
        for parent in registry.get(queue.popleft()).manifest.parents:
            if parent not in seen:
                seen.add(parent)
                order.append(parent)
                queue.append(parent)
    return order


def common_base(registry: Registry, model_ids: list[str]) -> str | None:
    """The nearest model that is (or is an ancestor of) every model; None when they share no lineage."""
    lines = [[ref, *ancestors(registry, ref)] for ref in model_ids]
    shared = set(lines[0]).intersection(*map(set, lines[1:]))
    return next((ref for ref in lines[0] if ref in shared and registry.get(ref).manifest.kind in MODEL_KINDS), None)


def model_domains(models: list[Artifact]) -> list[str]:
    """The domains the models serve (recipe ``domains``, else ``domain``), each once, in order."""
    found: list[str] = []
    for model in models:
        recipe = model.manifest.recipe
        found += recipe.get("domains") or ([recipe["domain"]] if recipe.get("domain") else [])
    return list(dict.fromkeys(found)) or ["general"]
