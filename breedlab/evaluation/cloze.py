"""Multiple-choice cloze suites: the "utility" a person would recognise.

Each case is a context cut from one held-out document, its true continuation,
and ``distractors`` continuations of the same token length cut from OTHER
documents of the same domain (never the same one). The model picks the option
it finds most likely after the context.

Scoring choice: the option's log-likelihood is the SUM of its tokens'
log-probabilities given the context (the probability of the whole string).
Every option has exactly ``continuation_tokens`` tokens under the suite's
tokenizer (spans are kept only if their text re-tokenises to the same ids), so
the sum and the per-token mean rank options identically there; the sum stays
the proper string probability when another tokenizer splits options into
different lengths. A case counts as correct only if the true continuation is
strictly more likely than every distractor (a tie is a miss).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from typing import Any

import torch

from breedlab.evaluation.passages import decode, encode
from breedlab.evaluation.scorers import SuiteResult, scorer

CUT_ATTEMPTS = 8
"""Random cut points tried per span before giving up on a document (a cut must survive the round trip)."""


def _span(tokenizer, ids: list[int], start: int, length: int) -> str | None:
    """Text of ids[start:start+length] if it re-tokenises to exactly those ids, else None."""
    span = ids[start:start + length]
    text = decode(tokenizer, span)
    return text if encode(tokenizer, text) == span else None


def _cut(tokenizer, ids: list[int], context: int, length: int, rng: random.Random) -> tuple[str, str] | None:
    """(context text, true continuation text) at a seeded cut point, or None if no cut round-trips."""
    for _ in range(CUT_ATTEMPTS):
        point = rng.randint(context, len(ids) - length)
        truth = _span(tokenizer, ids, point, length)
        if truth is not None:
            return decode(tokenizer, ids[point - context:point]), truth
    return None


def _distractors(tokenizer, case_doc: str, docs: list[tuple[str, list[int]]], taken: set[str], count: int,
                 length: int, rng: random.Random) -> list[tuple[str, str]] | None:
    """``count`` (doc id, text) spans of ``length`` tokens from distinct other documents, all distinct texts."""
    others = [(doc, ids) for doc, ids in docs if doc != case_doc and len(ids) >= length]
    rng.shuffle(others)
    chosen: list[tuple[str, str]] = []
    for doc, ids in others:
        for _ in range(CUT_ATTEMPTS):
            text = _span(tokenizer, ids, rng.randint(0, len(ids) - length), length)
            # Templated text repeats: a "distractor" equal to another option would make the case ambiguous.
            if text is not None and text not in taken:
                chosen.append((doc, text))
                taken.add(text)
                break
        if len(chosen) == count:
            return chosen
    return None


def cloze_cases(documents: Iterable[dict], tokenizer, *, count: int, context_tokens: int,
                continuation_tokens: int, distractors: int, rng: random.Random) -> list[dict]:
    """Up to ``count`` cases, one per held-out document (seeded choice of documents and cut points)."""
    docs = [(d["id"], encode(tokenizer, d["text"])) for d in documents]
    order = [(doc, ids) for doc, ids in docs if len(ids) >= context_tokens + continuation_tokens]
    rng.shuffle(order)
    cases: list[dict] = []
    for doc, ids in order:
        if len(cases) == count:
            break
        cut = _cut(tokenizer, ids, context_tokens, continuation_tokens, rng)
        if cut is None:
            continue
        context, truth = cut
        wrong = _distractors(tokenizer, doc, docs, {truth}, distractors, continuation_tokens, rng)
        if wrong is None:
            continue
        options = [(doc, truth)] + wrong
        rng.shuffle(options)  # the true option's position is seeded, so position carries no signal
        cases.append({"case": len(cases), "doc": doc, "context": context,
                      "options": [text for _, text in options], "option_docs": [d for d, _ in options],
                      "answer": [text for _, text in options].index(truth)})
    if not cases:
        raise ValueError(f"no held-out document has {context_tokens + continuation_tokens} tokens "
                         f"and {distractors} other documents to draw distractors from")
    return cases


@torch.no_grad()
def option_logliks(model, context: list[int], options: list[list[int]]) -> tuple[list[float], bool]:
    """Sum of log p(option tokens | context) per option, and whether any logit was non-finite.

    Options are right-padded into one batch: with causal attention, padding after
    an option cannot change the logits that score it, so no attention mask is needed.
    """
    width = len(context) + max(len(o) for o in options)
    batch = torch.zeros(len(options), width, dtype=torch.long)  # (K, T)
    for row, option in enumerate(options):
        batch[row, :len(context) + len(option)] = torch.tensor(context + option)
    logits = model(input_ids=batch).logits.float()  # (K, T, V)
    nonfinite = not bool(torch.isfinite(logits).all())
    logprobs = torch.log_softmax(logits, dim=-1)  # (K, T, V)
    del logits  # the largest tensor here
    sums = []
    for row, option in enumerate(options):
        # Position t predicts token t + 1, so the option's tokens are read at positions c - 1 .. c + n - 2.
        positions = torch.arange(len(context) - 1, len(context) - 1 + len(option))
        sums.append(float(logprobs[row, positions, torch.tensor(option)].sum()))
    return sums, nonfinite


@scorer("cloze-loglik", version=1, kinds=("cloze",))
def score_cloze(model, tokenizer, cases: list[dict], settings: dict[str, Any]) -> SuiteResult:
    """Share of cases whose true continuation is strictly the most likely option."""
    model.eval()
    correct: list[float] = []
    nonfinite = False
    for case in cases:
        options = [encode(tokenizer, text) for text in case["options"]]
        sums, bad = option_logliks(model, encode(tokenizer, case["context"]), options)
        nonfinite = nonfinite or bad or not all(math.isfinite(s) for s in sums)
        truth = sums[case["answer"]]
        wins = all(truth > s for i, s in enumerate(sums) if i != case["answer"])
        correct.append(1.0 if wins else 0.0)
    return SuiteResult(cases=len(cases), accuracy=sum(correct) / len(correct), case_scores=correct,
                       nonfinite=nonfinite)
