"""Capping, splitting by document, JSONL shards and reading them back."""

from __future__ import annotations

import json

import pytest

from breedlab.data.cleaning import Document
from breedlab.data.read import iter_documents, iter_texts
from breedlab.data.shards import split_stats, write_shards
from breedlab.data.split import SplitFractions, cap_documents, held_out_counts, split_documents


def make_docs(groups: int, pieces: int = 1) -> list[Document]:
    return [
        Document(id=f"g{g:03d}#{p}", group=f"g{g:03d}", source="s", text=f"text of group {g} piece {p} é")
        for g in range(groups)
        for p in range(pieces)
    ]


def test_split_is_deterministic_and_covers_every_document_once():
    docs = make_docs(200)
    first = split_documents(docs, SplitFractions(), seed=7)
    again = split_documents(list(reversed(docs)), SplitFractions(), seed=7)
    assert first == again
    ids = [d.id for split in first.values() for d in split]
    assert sorted(ids) == sorted(d.id for d in docs)
    assert (len(first["train"]), len(first["validation"]), len(first["test"])) == (180, 10, 10)


def test_split_changes_with_the_seed():
    docs = make_docs(200)
    assert split_documents(docs, SplitFractions(), 1)["test"] != split_documents(docs, SplitFractions(), 2)["test"]


def test_pieces_of_one_source_document_stay_in_one_split():
    splits = split_documents(make_docs(40, pieces=3), SplitFractions(), seed=0)
    group_split = {}
    for name, docs in splits.items():
        for d in docs:
            assert group_split.setdefault(d.group, name) == name


def test_small_domains_still_get_validation_and_test():
    assert held_out_counts(3, SplitFractions()) == (1, 1)
    assert held_out_counts(2, SplitFractions()) == (0, 0)
    assert held_out_counts(1000, SplitFractions(0.8, 0.1, 0.1)) == (100, 100)
    splits = split_documents(make_docs(5), SplitFractions(), seed=3)
    assert [len(splits[s]) for s in ("train", "validation", "test")] == [3, 1, 1]


def test_fractions_must_add_up_to_one():
    with pytest.raises(ValueError, match="add up to 1"):
        SplitFractions(0.9, 0.1, 0.1)


def test_cap_is_a_seeded_sample_in_id_order():
    docs = make_docs(100)
    capped = cap_documents(docs, 10, seed=5)
    assert len(capped) == 10 and capped == sorted(capped, key=lambda d: d.id)
    assert capped == cap_documents(list(reversed(docs)), 10, seed=5)
    assert cap_documents(docs, 0, seed=5) == docs


def test_shards_are_byte_identical_and_read_back_in_order(tmp_path):
    docs = make_docs(25)
    files_a = write_shards(list(reversed(docs)), "demo", tmp_path / "a", shard_docs=10)
    files_b = write_shards(docs, "demo", tmp_path / "b", shard_docs=10)
    assert list(files_a) == ["shard-00000.jsonl", "shard-00001.jsonl", "shard-00002.jsonl"]
    assert all(files_a[n].read_bytes() == files_b[n].read_bytes() for n in files_a)
    first_line = files_a["shard-00000.jsonl"].read_text(encoding="utf-8").splitlines()[0]
    assert list(json.loads(first_line)) == ["id", "domain", "source", "text"]
    assert "é" in first_line  # UTF-8, not \u escapes
    read = list(iter_documents(tmp_path / "a"))
    assert [r["id"] for r in read] == sorted(d.id for d in docs)
    assert read[0] == {"id": "g000#0", "domain": "demo", "source": "s", "text": docs[0].text}
    assert next(iter_texts(tmp_path / "a")) == docs[0].text


def test_empty_split_writes_one_empty_shard(tmp_path):
    files = write_shards([], "demo", tmp_path, shard_docs=10)
    assert list(files) == ["shard-00000.jsonl"] and files["shard-00000.jsonl"].read_bytes() == b""
    assert list(iter_documents(tmp_path)) == []


def test_iter_documents_refuses_a_folder_without_shards(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a dataset"):
        list(iter_documents(tmp_path))


def test_split_stats_counts_chars_and_tokens():
    docs = make_docs(4, pieces=2)
    stats = split_stats(docs, shards=1)
    chars = sum(len(d.text) for d in docs)
    assert stats == {"docs": 8, "chars": chars, "approx_tokens": chars // 4, "shards": 1, "source_documents": 4}
