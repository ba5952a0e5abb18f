"""The teacher-logit cache against a live pico parent, and its life in the registry."""

from __future__ import annotations

import json

import pytest
import torch

from breedlab.cmg import teacher as teacher_module
from breedlab.cmg.blocks import dataset_blocks, token_blocks
from breedlab.cmg.losses import kd_loss_full, kd_loss_topk
from breedlab.cmg.teacher import (
    OPERATOR,
    compute_teacher_cache,
    find_teacher_cache,
    load_teacher_cache,
    register_teacher_cache,
)
from breedlab.models.io import load_model, weights_digest
from breedlab.models.parent import import_parent, load_parent
from breedlab.models.pico import PICO_TEXTS

SEQ_LEN, K, TEMPERATURE = 16, 8, 4.0


@pytest.fixture()
def setting(registry, home, pico_parent_dir, tmp_path):
    """A registered pico parent, a registered one-shard dataset and its token blocks."""
    parent_art = import_parent(registry, pico_parent_dir, cache_dir=home.cache_dir, name="pico")
    parent, tokenizer = load_parent(registry, parent_art.id)
    shard = tmp_path / "shard-00000.jsonl"
    with open(shard, "w", encoding="utf-8") as out:
        for number, text in enumerate(PICO_TEXTS * 3):
            document = {"id": str(number), "domain": "prose", "source": "pico", "text": text}
            out.write(json.dumps(document) + "\n")
    data_art = registry.register("dataset", "prose/train", {shard.name: shard}, operator="test", recipe={})
    blocks = dataset_blocks(data_art.path, tokenizer, SEQ_LEN)  # (N, 16)
    recipe = {"k": K, "temperature": TEMPERATURE, "seq_len": SEQ_LEN, "tokens": None,
              "tokenizer": parent_art.manifest.files["tokenizer.json"].sha256}
    return parent_art, parent, data_art, blocks, recipe


def live_logits(parent, blocks: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return parent(input_ids=blocks).logits  # (N, S, V)


def test_cache_shapes_and_dtypes(setting):
    _, parent, _, blocks, _ = setting
    tokens_seen = []
    cache = compute_teacher_cache(parent, blocks, k=K, temperature=TEMPERATURE, batch_size=3,
                                  progress=tokens_seen.append)
    n, s = blocks.shape
    assert n >= 4
    assert {name: (t.dtype, tuple(t.shape)) for name, t in cache.items()} == {
        "input_ids": (torch.int32, (n, s)),
        "topk_ids": (torch.int32, (n, s, K)),
        "topk_logits": (torch.float32, (n, s, K)),
        "lse": (torch.float32, (n, s)),
    }
    assert torch.equal(cache["input_ids"].long(), blocks)
    assert (cache["topk_logits"].diff(dim=-1) <= 0).all()  # sorted, most likely first
    assert sum(tokens_seen) == n * s


def test_cache_matches_a_live_parent_forward(setting):
    _, parent, _, blocks, _ = setting
    cache = compute_teacher_cache(parent, blocks, k=K, temperature=TEMPERATURE, batch_size=2)
    logits = live_logits(parent, blocks)
    picked = logits.gather(-1, cache["topk_ids"].long())
    torch.testing.assert_close(cache["topk_logits"], picked, atol=1e-4, rtol=0)
    torch.testing.assert_close(cache["topk_logits"], logits.topk(K, dim=-1).values, atol=1e-4, rtol=0)
    torch.testing.assert_close(cache["lse"], torch.logsumexp(logits / TEMPERATURE, dim=-1), atol=1e-4, rtol=0)


def test_loss_from_the_registered_cache_equals_the_loss_from_live_logits(setting, registry):
    parent_art, parent, data_art, blocks, recipe = setting
    tensors = compute_teacher_cache(parent, blocks, k=K, temperature=TEMPERATURE)
    artifact = register_teacher_cache(registry, tensors, name="prose/train/teacher", parent_id=parent_art.id,
                                      data_id=data_art.id, recipe=recipe)
    cache = load_teacher_cache(artifact.path)
    assert len(cache) == blocks.size(0)
    assert (cache.k, cache.temperature, cache.seq_len) == (K, TEMPERATURE, SEQ_LEN)
    rows = torch.tensor([3, 0, 2])
    batch = cache.batch(rows)
    assert torch.equal(batch["input_ids"], blocks[rows])
    child = torch.randn(3, SEQ_LEN, parent.config.vocab_size, generator=torch.Generator().manual_seed(0))
    logits = live_logits(parent, blocks[rows])
    top = logits.topk(K, dim=-1)
    lse = torch.logsumexp(logits / TEMPERATURE, dim=-1)  # (3, S)
    live = kd_loss_topk(child, top.indices, top.values, lse, TEMPERATURE)
    cached = kd_loss_topk(child, batch["topk_ids"], batch["topk_logits"], batch["lse"], TEMPERATURE)
    assert cached.item() == pytest.approx(live.item(), rel=1e-5)
    assert 0 < cached.item() <= kd_loss_full(child, logits, TEMPERATURE).item()


def test_register_then_find_is_deterministic(setting, registry):
    parent_art, parent, data_art, blocks, recipe = setting
    ids = {"parent_id": parent_art.id, "data_id": data_art.id}
    assert find_teacher_cache(registry, **ids, recipe=recipe) is None
    first = register_teacher_cache(registry, compute_teacher_cache(parent, blocks, k=K), name="t", **ids,
                                   recipe=recipe)
    # A second breed recomputes nothing: it finds the cache by its recipe.
    assert find_teacher_cache(registry, **ids, recipe=dict(recipe)).id == first.id
    assert find_teacher_cache(registry, **ids, recipe=recipe, name="t").id == first.id
    assert find_teacher_cache(registry, **ids, recipe={**recipe, "k": 16}) is None
    assert find_teacher_cache(registry, parent_id=data_art.id, data_id=data_art.id, recipe=recipe) is None
    # Computing again gives the same bytes, so registering again gives the same id.
    again = register_teacher_cache(registry, compute_teacher_cache(parent, blocks, k=K), name="t", **ids,
                                   recipe=recipe)
    assert again.id == first.id
    manifest = first.manifest
    assert (manifest.kind, manifest.operator, manifest.parents, manifest.data) == (
        "dataset", OPERATOR, (parent_art.id,), (data_art.id,))
    assert manifest.recipe == recipe
    assert manifest.metrics["tokens"] == blocks.numel() and manifest.metrics["blocks"] == blocks.size(0)
    shards = [name for name in manifest.files if name.endswith(".safetensors")]
    assert manifest.metrics["bytes"] == sum(manifest.files[name].size for name in shards)


def test_large_caches_are_split_into_shards_read_back_in_order(setting, registry, monkeypatch):
    parent_art, parent, data_art, blocks, recipe = setting
    tensors = compute_teacher_cache(parent, blocks, k=K)
    row_bytes = SEQ_LEN * (4 + 4 * K + 4 * K + 4)
    monkeypatch.setattr(teacher_module, "SHARD_BYTES", 2 * row_bytes)  # two blocks per shard
    artifact = register_teacher_cache(registry, tensors, name="t", parent_id=parent_art.id,
                                      data_id=data_art.id, recipe=recipe)
    shards = sorted(name for name in artifact.manifest.files if name.endswith(".safetensors"))
    assert shards[:2] == ["teacher-00000.safetensors", "teacher-00001.safetensors"]
    assert len(shards) == (blocks.size(0) + 1) // 2
    cache = load_teacher_cache(artifact.path)
    rows = torch.arange(blocks.size(0)).flip(0)
    batch = cache.batch(rows)
    for name, tensor in tensors.items():
        assert torch.equal(batch[name].to(tensor.dtype), tensor[rows])
    with pytest.raises(IndexError):
        cache.batch(torch.tensor([blocks.size(0)]))


def test_computing_the_cache_leaves_the_parent_unchanged(setting):
    _, parent, _, blocks, _ = setting
    before = weights_digest(parent)
    compute_teacher_cache(parent, blocks, k=K)
    assert weights_digest(parent) == before
    assert all(p.grad is None for p in parent.parameters())


def test_a_recipe_that_does_not_describe_the_tensors_is_refused(setting, registry):
    parent_art, parent, data_art, blocks, recipe = setting
    tensors = compute_teacher_cache(parent, blocks, k=K)
    ids = {"name": "t", "parent_id": parent_art.id, "data_id": data_art.id}
    no_temperature = {key: value for key, value in recipe.items() if key != "temperature"}
    for bad in ({**recipe, "k": K + 1}, {**recipe, "seq_len": 8}, no_temperature):
        with pytest.raises(ValueError):
            register_teacher_cache(registry, tensors, **ids, recipe=bad)
    with pytest.raises(ValueError):
        register_teacher_cache(registry, {**tensors, "lse": tensors["lse"].half()}, **ids, recipe=recipe)
    assert registry.find(kind="dataset", name="t") == []


def test_loading_a_folder_without_shards_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a teacher cache"):
        load_teacher_cache(tmp_path)


def test_hidden_cache_reproduces_the_live_parent_logits_exactly(pico_parent_dir):
    from breedlab.cmg.teacher import compute_hidden_cache, teacher_logits

    parent, tokenizer = load_model(pico_parent_dir)
    blocks = token_blocks(tokenizer, PICO_TEXTS * 3, seq_len=32)
    cache = compute_hidden_cache(parent, blocks, batch_size=2)
    assert cache["hidden"].dtype == torch.float16 and cache["hidden"].shape[:2] == blocks.shape
    with torch.no_grad():
        live = parent(input_ids=blocks).logits
        rebuilt = teacher_logits(parent, {"hidden": cache["hidden"]})
    assert torch.allclose(live, rebuilt, atol=2e-3, rtol=1e-3)  # float16 rounding of the hidden states only
    child = torch.randn_like(live)
    assert abs(kd_loss_full(child, live, 4.0).item() - kd_loss_full(child, rebuilt, 4.0).item()) < 1e-4


def test_hidden_cache_round_trips_through_the_registry(pico_parent_dir, registry, tmp_path):
    from breedlab.cmg.teacher import compute_hidden_cache

    parent, tokenizer = load_model(pico_parent_dir)
    blocks = token_blocks(tokenizer, PICO_TEXTS * 3, seq_len=32)
    tensors = compute_hidden_cache(parent, blocks)
    data = registry.register("dataset", "code/train", {"shard-00000.jsonl": _jsonl(tmp_path)},
                             operator="test", recipe={})
    parent_art = registry.register("parent", "pico", {"model.safetensors": pico_parent_dir / "model.safetensors"},
                                   operator="import", recipe={})
    recipe = {"format": "hidden", "temperature": 4.0, "seq_len": 32, "tokens": blocks.numel()}
    art = register_teacher_cache(registry, tensors, name="code/train/teacher-hidden", parent_id=parent_art.id,
                                 data_id=data.id, recipe=recipe)
    cache = load_teacher_cache(art.path)
    assert cache.format == "hidden" and len(cache) == blocks.shape[0]
    batch = cache.batch(torch.tensor([2, 0]))
    assert torch.equal(batch["input_ids"], blocks[[2, 0]])
    assert torch.equal(batch["hidden"], tensors["hidden"][[2, 0]])


def _jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "x"}\n')
    return path
