"""Exact and MinHash/LSH near-duplicate removal."""

from __future__ import annotations

import random

import numpy as np
import pytest

from breedlab.data.cleaning import Document
from breedlab.data.dedup import (
    DedupParams,
    deduplicate,
    exact_key,
    hash_coefficients,
    minhash_signature,
    shingle_hashes,
)

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def prose(seed: int, words: int = 400) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) + str(rng.randrange(50)) for _ in range(words))


def doc(doc_id: str, text: str) -> Document:
    return Document(id=doc_id, group=doc_id, source="test", text=text)


def test_exact_key_ignores_case_and_whitespace_layout():
    assert exact_key("Hello   World\n") == exact_key("hello world")
    assert exact_key("hello world") != exact_key("hello worlds")


def test_exact_duplicates_keep_the_lowest_id():
    base = prose(1)
    kept, counts = deduplicate([doc("b", base), doc("a", base.upper()), doc("c", prose(2))], DedupParams())
    assert [d.id for d in kept] == ["a", "c"]
    assert counts == {"exact_duplicates": 1, "near_duplicates": 0}


def test_near_duplicate_with_a_few_edits_is_dropped():
    base = prose(3).split()
    edited = list(base)
    for i in (50, 200, 350):
        edited[i] = "CHANGED"
    docs = [doc("a", " ".join(base)), doc("b", " ".join(edited)), doc("c", prose(4))]
    kept, counts = deduplicate(docs, DedupParams(threshold=0.8))
    assert [d.id for d in kept] == ["a", "c"]
    assert counts["near_duplicates"] == 1


def test_distinct_documents_are_all_kept():
    docs = [doc(f"d{i}", prose(100 + i)) for i in range(30)]
    kept, counts = deduplicate(docs, DedupParams())
    assert len(kept) == 30 and counts["near_duplicates"] == 0


def test_threshold_decides_what_counts_as_near():
    base = prose(5).split()
    half = base[:200] + prose(6, 200).split()  # about a third of shingles shared
    docs = [doc("a", " ".join(base)), doc("b", " ".join(half))]
    assert len(deduplicate(docs, DedupParams(threshold=0.8))[0]) == 2
    assert len(deduplicate(docs, DedupParams(threshold=0.2, bands=64, permutations=128))[0]) == 1


def test_minhash_estimates_jaccard_and_is_deterministic():
    a_text, b_text = prose(7), prose(8)
    a, b = hash_coefficients(256, seed=0)
    sa = minhash_signature(shingle_hashes(a_text, 5), a, b)
    assert np.array_equal(sa, minhash_signature(shingle_hashes(a_text, 5), *hash_coefficients(256, seed=0)))
    sb = minhash_signature(shingle_hashes(b_text, 5), a, b)
    assert sa.dtype == np.uint32 and sa.shape == (256,)
    assert np.mean(sa == sb) < 0.1  # unrelated texts


def test_dedup_is_deterministic_under_input_order():
    base = prose(9)
    docs = [doc(f"d{i}", base + f" tail{i}") for i in range(5)] + [doc("z", prose(10))]
    first = deduplicate(docs, DedupParams())[0]
    second = deduplicate(list(reversed(docs)), DedupParams())[0]
    assert [d.id for d in first] == [d.id for d in second] == ["d0", "z"]


def test_bands_must_divide_permutations():
    with pytest.raises(ValueError, match="divisible"):
        deduplicate([doc("a", prose(1))], DedupParams(permutations=100, bands=16))
