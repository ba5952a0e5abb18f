"""Token blocks from a dataset split: a budget samples the whole split, not its first sources."""

from __future__ import annotations

import json

import pytest
import torch

from breedlab.cmg.blocks import dataset_blocks, ordered_texts
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.operators.cmg import breed_child
from breedlab.registry import Registry
from breedlab.registry.canonical import sha256_json


def write_split(path, sources: dict[str, int]) -> None:
    """A one-shard split stored in source order: every document of one source, then the next."""
    path.mkdir()
    with open(path / "shard-00000.jsonl", "w", encoding="utf-8") as out:
        for source, count in sources.items():
            for number in range(count):
                text = f"{source} document {number}: " + " ".join([source] * 12)
                out.write(json.dumps({"id": f"{source}:{number}", "domain": "prose", "source": source,
                                      "text": text}) + "\n")


def test_shuffled_order_is_a_seeded_permutation_of_every_document(tmp_path):
    write_split(tmp_path / "split", {"alpha": 30, "beta": 30, "gamma": 30})
    stored = list(ordered_texts(tmp_path / "split", "document"))  # streamed as stored
    shuffled = ordered_texts(tmp_path / "split", "shuffled")
    assert sorted(shuffled) == sorted(stored) and shuffled != stored
    assert ordered_texts(tmp_path / "split", "shuffled") == shuffled  # the same every time
    with pytest.raises(ValueError, match="unknown document order"):
        ordered_texts(tmp_path / "split", "random")


def test_a_budget_draws_from_every_source_only_when_shuffled(tmp_path, pico_parent_dir):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pico_parent_dir)
    write_split(tmp_path / "split", {"alpha": 40, "beta": 40, "gamma": 40})
    budget = 12 * 32  # far less than one source's text
    seen = {}
    for order in ("document", "shuffled"):
        blocks = dataset_blocks(tmp_path / "split", tokenizer, 32, budget, order)  # (12, 32)
        text = tokenizer.decode(blocks.flatten().tolist())
        seen[order] = {source for source in ("alpha", "beta", "gamma") if source in text}
    assert seen == {"document": {"alpha"}, "shuffled": {"alpha", "beta", "gamma"}}
    assert torch.equal(dataset_blocks(tmp_path / "split", tokenizer, 32, budget),
                       dataset_blocks(tmp_path / "split", tokenizer, 32, budget, "shuffled"))  # the default


def test_recipe_refuses_an_unknown_order():
    with pytest.raises(ValueError, match="data_order"):
        CMGRecipe(domain="prose", data_order="random")


def test_document_order_keeps_the_key_children_had_before_the_field(tmp_path):
    """A document-order child is found by its old key (no data_order in it); shuffled is a new child."""
    home = Home.resolve(tmp_path / "home")
    registry = Registry.open(home.registry_dir)
    parent_id = build_pico_lab(registry, home.cache_dir).parent.id
    small = dict(domain="code", ratio=0.5, steps=2, batch_size=2, seq_len=16, profile_tokens=256,
                 pool_tokens=256, rehearsal_share=0.0, warmup_steps=1)
    options = RunOptions(progress=False, work_dir=tmp_path / "work")
    legacy = CMGRecipe(**small, data_order="document")
    first = breed_child(registry, home, parent_id, legacy, options).child
    old_fields = {k: v for k, v in legacy.to_dict().items() if v is not None and k != "data_order"}
    data_id = registry.find(kind="dataset", name="code/train")[0].id
    assert first.manifest.recipe["inputs"]["key"] == sha256_json(
        {"recipe": old_fields, "parent": parent_id, "data": [data_id, None]})
    assert breed_child(registry, home, parent_id, legacy, options).child.id == first.id
    shuffled = breed_child(registry, home, parent_id, CMGRecipe(**small), options).child
    assert shuffled.id != first.id
    assert shuffled.manifest.recipe["data_order"] == "shuffled"
