"""Language-model scores on token blocks: next-token accuracy and perplexity.

Kept per block as well as in total, so two models scored on the same blocks
can be compared pairwise (the champion-challenger tests need the pairs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class LMScores:
    tokens: int = 0
    """Predicted positions (S - 1 per block)."""
    nll: float = 0.0
    """Sum of next-token negative log-likelihoods (nats)."""
    correct: int = 0
    """Positions whose greedy prediction is the true next token."""
    block_nll: list[float] = field(default_factory=list)
    block_correct: list[int] = field(default_factory=list)

    @property
    def accuracy(self) -> float:
        return self.correct / max(1, self.tokens)

    @property
    def perplexity(self) -> float:
        return math.exp(self.nll / max(1, self.tokens))


@torch.no_grad()
def score_lm(model, blocks: torch.Tensor, batch_size: int = 8,
             progress: Callable[[int], None] | None = None) -> LMScores:
    """Score ``blocks`` (N, S): logits at position t are judged against token t+1."""
    model.eval()
    scores = LMScores()
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start:start + batch_size]  # (B, S)
        logits = model(input_ids=batch).logits[:, :-1].float()  # (B, S-1, V)
        targets = batch[:, 1:]  # (B, S-1)
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, S-1)
        correct = (logits.argmax(dim=-1) == targets)  # (B, S-1)
        del logits  # (B, S-1, V): the largest tensor here; free it before the next batch
        scores.block_nll += nll.sum(dim=1).tolist()
        scores.block_correct += correct.sum(dim=1).tolist()
        if progress:
            progress(batch.numel())
    scores.tokens = int(blocks.shape[0] * (blocks.shape[1] - 1))
    scores.nll = float(sum(scores.block_nll))
    scores.correct = int(sum(scores.block_correct))
    return scores


@torch.no_grad()
def generation_speed(model, tokenizer, prompt: str, new_tokens: int = 64, repeats: int = 3) -> float:
    """Greedy decoding speed in generated tokens per second (best of ``repeats``, KV cache on)."""
    model.eval()
    inputs = tokenizer(prompt, return_tensors="pt")
    best = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                do_sample=False, pad_token_id=tokenizer.eos_token_id)
        best = min(best, time.perf_counter() - started)
    generated = output.shape[1] - inputs["input_ids"].shape[1]
    return generated / best
