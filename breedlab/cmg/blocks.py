"""Dataset text -> fixed-length token blocks, deterministically.

Documents are tokenised, joined with the EOS token between them (so the model
sees document boundaries) and cut into blocks of ``seq_len`` tokens; the tail
shorter than a block is dropped. The same dataset, tokenizer, length, budget
and order always give the same tensor, which is what lets a teacher cache
computed once be reused by every child bred on that data.

Order matters because a budget takes only the first documents. A split is
stored in source order (all of one package, then the next), so the first 65k
tokens of ``medical/train`` are 235 documents of a single ontology and the
first 16k of ``general/test`` are chapters of one novel. ``shuffled`` (the
default, ``ORDERS``) reads the documents in a seeded random order first, so a
budget is a sample of the whole split; ``document`` is the stored order, kept
so that results measured with it (before issue 11's fix) can be reproduced.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable

import torch

from breedlab.cmg.recipe import LEGACY_ORDER, ORDERS
from breedlab.data.read import iter_documents, iter_texts

SHUFFLE_SEED = 0


def token_blocks(tokenizer, texts: Iterable[str], seq_len: int, max_blocks: int | None = None) -> torch.Tensor:
    """A ``(N, seq_len)`` int64 tensor of consecutive tokens from ``texts``."""
    if seq_len < 2:
        raise ValueError("seq_len must be at least 2 (one input and one target)")
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token to separate documents")
    stream: list[int] = []
    needed = None if max_blocks is None else max_blocks * seq_len
    for text in texts:
        stream.extend(tokenizer(text, add_special_tokens=False)["input_ids"])
        stream.append(eos)
        if needed is not None and len(stream) >= needed:
            break
    usable = len(stream) // seq_len
    if max_blocks is not None:
        usable = min(usable, max_blocks)
    if usable == 0:
        raise ValueError(f"not enough text for one block of {seq_len} tokens")
    return torch.tensor(stream[: usable * seq_len], dtype=torch.long).view(usable, seq_len)


def ordered_texts(artifact_path: Path, order: str = "shuffled") -> Iterable[str]:
    """The split's document texts in ``order``: ``shuffled`` is a seeded permutation of all of them;
    ``document`` streams them as stored (a budget stops reading early)."""
    if order not in ORDERS:
        raise ValueError(f"unknown document order {order!r}; choose one of {ORDERS}")
    if order == "document":
        return iter_texts(artifact_path)
    texts = [document["text"] for document in iter_documents(artifact_path)]
    random.Random(SHUFFLE_SEED).shuffle(texts)
    return texts


def order_record(order: str) -> dict[str, str]:
    """What a derived artifact's recipe records of ``order``: nothing for the legacy order."""
    return {} if order == LEGACY_ORDER else {"order": order}


def dataset_blocks(artifact_path: Path, tokenizer, seq_len: int, max_tokens: int | None = None,
                   order: str = "shuffled") -> torch.Tensor:
    """Blocks from a registered dataset split, up to ``max_tokens`` tokens, documents read in ``order``."""
    max_blocks = None if max_tokens is None else max(1, max_tokens // seq_len)
    return token_blocks(tokenizer, ordered_texts(artifact_path, order), seq_len, max_blocks)
