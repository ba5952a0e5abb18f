"""modelio: pickles refused unopened, frozen hashes enforced, lossless round trips."""

from __future__ import annotations

import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import torch

from breedlab.models.io import (
    FrozenModelTampered,
    UnsafeModelFile,
    count_parameters,
    load_model,
    refuse_pickles,
    save_model,
    sha256_file,
    weights_digest,
)
from breedlab.models.pico import build_pico_model, build_pico_parent, build_pico_tokenizer


class _CreatesMarker:
    """Unpickling this calls open(marker, "w"): the marker file proves a load happened."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _booby_trapped_pickle(marker: Path) -> bytes:
    return pickle.dumps({"weight": [1.0, 2.0], "trap": _CreatesMarker(marker)}, protocol=4)


def _copy_of(source: Path, tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(source, target)
    return target


@pytest.mark.parametrize("name", ["pytorch_model.bin", "model.pt", "w.pth", "w.pkl", "w.pickle", "last.ckpt"])
def test_pickle_extensions_are_refused_without_unpickling(pico_parent_dir, tmp_path, name):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    marker = tmp_path / "unpickled.marker"
    (model_dir / name).write_bytes(_booby_trapped_pickle(marker))
    with pytest.raises(UnsafeModelFile, match="NOT unpickled") as caught:
        load_model(model_dir)
    assert name in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("disguise", ["model.safetensors", "extra.safetensors", "notes.json", "README"])
def test_pickle_disguised_by_name_is_refused_by_content(pico_parent_dir, tmp_path, disguise):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    marker = tmp_path / "unpickled.marker"
    (model_dir / disguise).write_bytes(_booby_trapped_pickle(marker))
    with pytest.raises(UnsafeModelFile, match="pickle header") as caught:
        load_model(model_dir)
    assert disguise in str(caught.value) and "NOT unpickled" in str(caught.value)
    assert not marker.exists()


def test_torch_zip_checkpoint_is_refused_whatever_its_name(tmp_path):
    with zipfile.ZipFile(tmp_path / "weights.safetensors", "w") as archive:
        archive.writestr("archive/data.pkl", _booby_trapped_pickle(tmp_path / "marker"))
    with pytest.raises(UnsafeModelFile, match="data.pkl"):
        refuse_pickles(tmp_path)


def test_safetensors_whose_length_prefix_looks_like_a_pickle_is_accepted(tmp_path):
    """A header of 0x0280 bytes starts the file with 80 02, the protocol-2 pickle marker."""
    header = json.dumps({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}).encode()
    header = header.ljust(0x0280, b" ")
    path = tmp_path / "model.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + b"\x00" * 8)
    assert path.read_bytes()[:2] == b"\x80\x02"
    refuse_pickles(tmp_path)  # no error: it is structurally valid safetensors
    from safetensors.torch import load_file

    assert load_file(path)["w"].tolist() == [0.0, 0.0]


def test_truncated_safetensors_is_refused(pico_parent_dir, tmp_path):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    (model_dir / "model.safetensors").write_bytes(b"\x10\x00")
    with pytest.raises(UnsafeModelFile, match="not a valid safetensors"):
        refuse_pickles(model_dir)


def _hashes(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): sha256_file(p) for p in directory.rglob("*") if p.is_file()}


def test_expected_hashes_pass_then_tampering_is_named(pico_parent_dir, tmp_path):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    expected = _hashes(model_dir)
    load_model(model_dir, expected_files=expected)
    weights = model_dir / "model.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[-1] ^= 0x01  # one bit of one weight: still valid safetensors
    weights.write_bytes(bytes(raw))
    with pytest.raises(FrozenModelTampered, match="'model.safetensors'.*modified"):
        load_model(model_dir, expected_files=expected)


@pytest.mark.parametrize("change", ["delete", "add"])
def test_missing_or_added_files_count_as_tampering(pico_parent_dir, tmp_path, change):
    model_dir = _copy_of(pico_parent_dir, tmp_path)
    expected = _hashes(model_dir)
    if change == "delete":
        (model_dir / "tokenizer.json").unlink()
        match = "'tokenizer.json' is missing"
    else:
        (model_dir / "special_tokens_map.json").write_text("{}")
        match = "unrecorded file 'special_tokens_map.json'"
    with pytest.raises(FrozenModelTampered, match=match):
        load_model(model_dir, expected_files=expected)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    tokenizer = build_pico_tokenizer()
    model = build_pico_model(tokenizer, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, seed=3)
    save_model(model, tokenizer, tmp_path / "saved")
    written = sorted(p.name for p in (tmp_path / "saved").iterdir())
    assert "model.safetensors" in written
    assert not [n for n in written if n.endswith((".bin", ".pt", ".pth", ".pkl", ".ckpt"))]
    loaded, loaded_tokenizer = load_model(tmp_path / "saved")
    ids = torch.tensor([tokenizer("The keeper wrote the weather.")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert loaded_tokenizer("héllo 😀")["input_ids"] == tokenizer("héllo 😀")["input_ids"]
    assert weights_digest(loaded) == weights_digest(model)
    assert not loaded.training and next(loaded.parameters()).dtype == torch.float32


def test_weights_digest_is_stable_and_sees_one_changed_weight():
    tokenizer = build_pico_tokenizer()
    model = build_pico_model(tokenizer, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64)
    same_seed = build_pico_model(tokenizer, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64)
    other_seed = build_pico_model(tokenizer, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64, seed=1)
    before = weights_digest(model)
    assert before == weights_digest(model) == weights_digest(same_seed)
    assert before != weights_digest(other_seed)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight[0, 0] += 1e-3
    assert weights_digest(model) != before


def test_count_parameters_counts_tied_embeddings_once():
    tokenizer = build_pico_tokenizer()
    model = build_pico_model(tokenizer, hidden=32, layers=2, heads=2, kv_heads=1, intermediate=64)
    assert model.lm_head.weight is model.model.embed_tokens.weight
    unique = {id(p): p.numel() for p in model.parameters()}
    embedding = len(tokenizer) * 32
    assert count_parameters(model) == sum(unique.values())
    assert count_parameters(model, include_embeddings=False) == count_parameters(model) - embedding


def test_pico_parent_is_byte_identical_for_the_same_arguments(tmp_path):
    first = build_pico_parent(tmp_path / "a", hidden=32, layers=2, train_steps=3, seed=5)
    second = build_pico_parent(tmp_path / "b", hidden=32, layers=2, train_steps=3, seed=5)
    assert _hashes(first) == _hashes(second)
    third = build_pico_parent(tmp_path / "c", hidden=32, layers=2, train_steps=3, seed=6)
    assert _hashes(third)["model.safetensors"] != _hashes(first)["model.safetensors"]


def test_pico_tokenizer_has_specials_and_a_chat_template(pico_parent_dir):
    _, tokenizer = load_model(pico_parent_dir)
    ids = (tokenizer.unk_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id)
    assert ids == (0, 1, 2, 3)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hi"}], add_generation_prompt=True, tokenize=False
    )
    assert prompt == "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
