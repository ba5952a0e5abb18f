"""Serving a query in the ecosystem replay: a real forward pass, measured.

A served query is the prompt's prefill through the routed model: one forward
pass over its tokens (at most ``max_tokens``). That gives, per query, the three
numbers the ecosystem runs on: wall time (measured), FLOPs (the cost model's
``flops_per_token`` at the query's length, times its tokens) and the model's
mean next-token NLL on the query text (the live quality signal that shadow,
canary and revalidation compare, paired, between two models on the same text).

Models are loaded once (files re-hashed against their manifests, as the
evaluation does) and kept while active; ``release`` drops one that retired.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from breedlab.evaluation.cost import flops_per_token
from breedlab.evaluation.measure import load_candidate
from breedlab.registry import Registry


@dataclass(frozen=True)
class Served:
    """One model's pass over one query."""

    model: str
    tokens: int
    nll: float
    """Mean next-token NLL over the query (nats); NaN for a one-token query."""
    flops: float
    latency_ms: float


class ModelPool:
    """Loaded models by artifact id; ``run`` scores one text with one of them."""

    def __init__(self, registry: Registry, *, max_tokens: int = 64):
        self.registry, self.max_tokens = registry, max_tokens
        self._models: dict[str, tuple] = {}  # id -> (model, tokenizer)

    def load(self, model_id: str):
        if model_id not in self._models:
            model, tokenizer = load_candidate(self.registry.get(model_id))
            model.eval()
            self._models[model_id] = (model, tokenizer)
        return self._models[model_id]

    def release(self, model_id: str) -> None:
        self._models.pop(model_id, None)

    def flops_per_token(self, model_id: str, context: int) -> float:
        return flops_per_token(self.load(model_id)[0].config, context)

    @torch.no_grad()
    def run(self, model_id: str, text: str) -> Served:
        model, tokenizer = self.load(model_id)
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :self.max_tokens]
        tokens = int(ids.shape[1])
        start = time.perf_counter()
        logits = model(input_ids=ids).logits[0, :-1].float()  # (T-1, V)
        latency_ms = (time.perf_counter() - start) * 1e3
        nll = float(torch.nn.functional.cross_entropy(logits, ids[0, 1:])) if tokens > 1 else float("nan")
        flops = tokens * flops_per_token(model.config, tokens)
        return Served(model_id, tokens, nll, flops, latency_ms)
