"""Exact and near-duplicate removal (MinHash over word shingles, LSH banding).

Exact: sha256 of the text lower-cased with whitespace collapsed.
Near: each document's set of word ``k``-shingles is summarised by ``P``
MinHash values (Broder 1997): for hash functions ``h_i(x) = (a_i x + b_i) mod p``
over 32-bit shingle hashes, ``P(min h_i(A) == min h_i(B)) = Jaccard(A, B)``.
Signatures are cut into ``B`` bands of ``R = P / B`` rows; documents sharing
any band bucket are candidates (Leskovec et al., *Mining of Massive Datasets*
ch. 3.4), and a candidate is dropped only when its estimated Jaccard with a
kept document reaches the threshold. Everything is seeded and visits
documents in id order, so the same input always keeps the same documents.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from breedlab.data.cleaning import Document

MERSENNE_61 = np.uint64((1 << 61) - 1)  # prime > 2**32: (a*x + b) mod p is a universal family
_MAX_32 = np.uint64(0xFFFFFFFF)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class DedupParams:
    """How duplicates are detected (all part of the dataset recipe)."""

    threshold: float = 0.8
    """Estimated Jaccard similarity of shingle sets at or above which a document is a near-duplicate."""
    shingle_words: int = 5
    """Words per shingle."""
    permutations: int = 128
    """MinHash values per document (P)."""
    bands: int = 16
    """LSH bands (B); P must be divisible by B. More bands find more candidates."""
    seed: int = 0
    """Seeds the MinHash hash functions."""


def exact_key(text: str) -> str:
    """Identity key: sha256 of the lower-cased text with whitespace runs collapsed."""
    return hashlib.sha256(" ".join(text.lower().split()).encode("utf-8")).hexdigest()


def drop_exact_duplicates(docs: Iterable[Document]) -> list[Document]:
    """Keep the first document (in id order) of each exact-duplicate group."""
    seen: set[str] = set()
    kept: list[Document] = []
    for doc in sorted(docs, key=lambda d: d.id):
        key = exact_key(doc.text)
        if key not in seen:
            seen.add(key)
            kept.append(doc)
    return kept


def shingle_hashes(text: str, words: int) -> np.ndarray:
    """32-bit hashes of the distinct word ``words``-shingles of ``text`` (lower-cased)."""
    tokens = _WORD.findall(text.lower())
    if len(tokens) < words:
        shingles = {" ".join(tokens)}
    else:
        shingles = {" ".join(tokens[i : i + words]) for i in range(len(tokens) - words + 1)}
    digests = b"".join(hashlib.blake2b(s.encode("utf-8"), digest_size=4).digest() for s in sorted(shingles))
    return np.frombuffer(digests, dtype="<u4").astype(np.uint64)


def hash_coefficients(permutations: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(a, b)`` for the ``permutations`` hash functions, each ``(P, 1)`` uint64 in [1, 2**32)."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 32, size=(permutations, 1), dtype=np.uint64)
    b = rng.integers(0, 1 << 32, size=(permutations, 1), dtype=np.uint64)
    return a, b


def minhash_signature(hashes: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(P,)`` uint32 MinHash signature of one shingle set (``hashes``: ``(S,)`` uint64)."""
    # a, x < 2**32 so a*x + b < 2**64: no uint64 overflow before the mod.
    permuted = (a * hashes[None, :] + b) % MERSENNE_61 & _MAX_32  # (P, S)
    return permuted.min(axis=1).astype(np.uint32)


def near_duplicate_ids(docs: Sequence[Document], params: DedupParams, track=None) -> set[str]:
    """Ids of documents that are near-duplicates of an earlier (lower id) kept document."""
    if params.permutations % params.bands:
        raise ValueError(f"permutations ({params.permutations}) must be divisible by bands ({params.bands})")
    rows = params.permutations // params.bands
    a, b = hash_coefficients(params.permutations, params.seed)
    ordered = sorted(docs, key=lambda d: d.id)
    items = track(ordered, "near-dedup", len(ordered)) if track else ordered
    buckets: list[dict[bytes, list[int]]] = [{} for _ in range(params.bands)]
    kept_signatures: list[np.ndarray] = []
    dropped: set[str] = set()
    for doc in items:
        signature = minhash_signature(shingle_hashes(doc.text, params.shingle_words), a, b)
        keys = [signature[i * rows : (i + 1) * rows].tobytes() for i in range(params.bands)]
        candidates = {k for band, key in enumerate(keys) for k in buckets[band].get(key, ())}
        if any(np.mean(kept_signatures[k] == signature) >= params.threshold for k in candidates):
            dropped.add(doc.id)
            continue
        for band, key in enumerate(keys):
            buckets[band].setdefault(key, []).append(len(kept_signatures))
        kept_signatures.append(signature)
    return dropped


def deduplicate(docs: Iterable[Document], params: DedupParams, track=None) -> tuple[list[Document], dict[str, int]]:
    """Drop exact then near duplicates; return kept documents (id order) and drop counts."""
    docs = list(docs)
    unique = drop_exact_duplicates(docs)
    near = near_duplicate_ids(unique, params, track)
    kept = [doc for doc in unique if doc.id not in near]
    counts = {"exact_duplicates": len(docs) - len(unique), "near_duplicates": len(near)}
    return kept, counts
