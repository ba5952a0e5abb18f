"""Deterministic capping and train/validation/test splitting, by document.

Every decision ranks by ``sha256(f"{seed}:{purpose}:{key}")``: the order is
fixed by the seed and the ids alone, not by file-system order, hash seeds or
how many documents happen to be present, so adding one document moves only
that document. Splitting ranks *groups* (the raw document a piece was cut
from): all pieces of one licence, man page or speech land in the same split,
so validation text never shares a source document with training text.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Sequence

from breedlab.data.cleaning import Document

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitFractions:
    """Share of documents (by source-document group) per split; must add up to 1."""

    train: float = 0.9
    validation: float = 0.05
    test: float = 0.05

    def __post_init__(self) -> None:
        values = (self.train, self.validation, self.test)
        if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-6:
            raise ValueError(f"split fractions must be >= 0 and add up to 1, got {values}")


def rank_key(seed: int, purpose: str, key: str) -> str:
    return hashlib.sha256(f"{seed}:{purpose}:{key}".encode("utf-8")).hexdigest()


def cap_documents(docs: Sequence[Document], max_docs: int, seed: int) -> list[Document]:
    """At most ``max_docs`` documents, a seeded sample that mixes all sources; id order."""
    if max_docs <= 0 or len(docs) <= max_docs:
        return sorted(docs, key=lambda d: d.id)
    ranked = sorted(docs, key=lambda d: rank_key(seed, "cap", d.id))[:max_docs]
    return sorted(ranked, key=lambda d: d.id)


def held_out_counts(groups: int, fractions: SplitFractions) -> tuple[int, int]:
    """Groups for validation and test: rounded, but at least 1 each when a train group remains."""
    n_val = round(groups * fractions.validation)
    n_test = round(groups * fractions.test)
    if groups >= 3:
        n_val = max(n_val, 1) if fractions.validation > 0 else 0
        n_test = max(n_test, 1) if fractions.test > 0 else 0
    while n_val + n_test >= groups and (n_val or n_test) and groups > 0:
        # never leave training empty: shrink the larger held-out split first
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    return n_val, n_test


def split_documents(
    docs: Sequence[Document], fractions: SplitFractions, seed: int
) -> dict[str, list[Document]]:
    """Assign whole groups to splits by seeded rank; each split's documents in id order."""
    by_group: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        by_group[doc.group].append(doc)
    ranked = sorted(by_group, key=lambda g: rank_key(seed, "split", g))
    n_val, n_test = held_out_counts(len(ranked), fractions)
    chosen = {
        "validation": ranked[:n_val],
        "test": ranked[n_val : n_val + n_test],
        "train": ranked[n_val + n_test :],
    }
    return {
        split: sorted((doc for group in chosen[split] for doc in by_group[group]), key=lambda d: d.id)
        for split in SPLITS
    }
