"""Language-modelling suites (``lm`` and ``retention``): fixed-length passages of held-out text.

A case is one passage of exactly ``tokens`` tokens (under the suite's
tokenizer) cut from a single held-out document; only its text is stored, and
a passage is kept only if re-tokenising that text gives back the same ids, so
the text alone is the truth and the scorer can rebuild the exact block.
Passages are non-overlapping spans of each document; a seeded shuffle picks
which ones make the suite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

import torch

from breedlab.evaluation.lm import score_lm
from breedlab.evaluation.scorers import SuiteRefused, SuiteResult, scorer


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` without BOS/EOS: suites score the text itself, not a chat frame."""
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def decode(tokenizer, ids: list[int]) -> str:
    """Text of ``ids`` exactly as tokenised (no clean-up that would change the round trip)."""
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def document_passages(tokenizer, document: dict, tokens: int) -> list[dict]:
    """Non-overlapping ``tokens``-long passages of one document that survive the text round trip."""
    ids = encode(tokenizer, document["text"])
    found = []
    for offset in range(0, len(ids) - tokens + 1, tokens):
        span = ids[offset:offset + tokens]
        text = decode(tokenizer, span)
        # A span cut inside a multi-byte character or a merge does not re-encode to itself; skip it
        # rather than store a case whose token count depends on how it is re-read.
        if encode(tokenizer, text) == span:
            found.append({"doc": document["id"], "offset": offset, "text": text})
    return found


def lm_cases(documents: Iterable[dict], tokenizer, *, count: int, tokens: int, rng: random.Random) -> list[dict]:
    """Up to ``count`` passages drawn (seeded) from every document's passages, numbered in order."""
    if tokens < 2:
        raise ValueError("an lm passage needs at least 2 tokens (one input, one target)")
    pool = [p for document in documents for p in document_passages(tokenizer, document, tokens)]
    rng.shuffle(pool)  # pool order is the dataset's document order, so the shuffle is seeded and stable
    chosen = pool[:count]
    if not chosen:
        raise ValueError(f"no held-out document has {tokens} tokens; use shorter passages")
    return [{"case": number, **passage} for number, passage in enumerate(chosen)]


def case_blocks(tokenizer, cases: list[dict], tokens: int) -> torch.Tensor:
    """The ``(N, tokens)`` id tensor of the cases, refusing a tokenizer that reads them differently."""
    rows = []
    for case in cases:
        ids = encode(tokenizer, case["text"])
        if len(ids) != tokens:
            raise SuiteRefused(
                f"case {case['case']} tokenises to {len(ids)} ids, not {tokens}: the model's tokenizer "
                "is not the one this suite was built with, so its per-token scores would not compare")
        rows.append(ids)
    return torch.tensor(rows, dtype=torch.long)  # (N, tokens)


@scorer("lm-next-token", version=1, kinds=("lm", "retention"))
def score_passages(model, tokenizer, cases: list[dict], settings: dict[str, Any]) -> SuiteResult:
    """Next-token accuracy and perplexity over every passage; per case the mean NLL per predicted token."""
    tokens = int(settings["tokens"])
    blocks = case_blocks(tokenizer, cases, tokens)  # (N, tokens)
    scores = score_lm(model, blocks)
    per_case = [nll / (tokens - 1) for nll in scores.block_nll]  # nats per predicted token
    nonfinite = not all(math.isfinite(v) for v in per_case)
    return SuiteResult(
        cases=len(cases),
        accuracy=scores.accuracy,
        perplexity=None if nonfinite else scores.perplexity,
        case_scores=per_case,
        nonfinite=nonfinite,
    )
