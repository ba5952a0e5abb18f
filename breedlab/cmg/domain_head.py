"""An optional domain head: logits for the domain's own vocabulary, with a fallback to the full head.

A small child's LM head is a large share of its work: SmolLM2's tied head is
576 x 49,152, 28.3M multiply-adds per token, and at batch 1 on a CPU the
113 MB it reads per token is the largest single tensor. Vocabulary trimming
(arXiv 2305.15020) keeps only the ids a domain uses. Here they are the ids
covering ``coverage`` of the domain's training tokens, plus every byte-level
base token (so any text can still be spelled) and every special token.

A hard trim is wrong on every held-out token outside the set (1-2% on our
corpora), so this head has a fallback in the manner of adaptive softmax's two
levels: the kept logits plus one "other" score, with the dropped ids' logits
computed only when "other" could win. Kept and dropped rows together are the
full head, so a fallback never recomputes the kept part: a fast step reads
K/V of the head and a fallback all of it once. The "other" score is a
calibrated upper estimate of the largest dropped logit: a ridge regression of
max_{j dropped} z_j on the hidden state (one 576-dot product), plus a margin
equal to the largest residual seen on calibration tokens. Where the best kept
logit beats it, the kept argmax is taken; elsewhere the dropped rows run too
(counted in ``fallbacks``).

Why not a proof? The cheap certificates all fail here: a cluster bound
``c . h + r ||h||`` (Cauchy-Schwarz) and a PCA-residual bound both came out
near 215 on SmolLM2, whose real logits are about 27, so no position ever took
the fast path. The regression's margin is an empirical bound, not a proof:
its misses are measured on held-out tokens (``argmax_misses`` in the
benchmark), never assumed away. Sampling and scoring need the whole
distribution, so the fast path is only taken inside :func:`greedy_head`, at
one position per sequence (a decode step); everything else is the full head.

The child's folder stays a plain ``LlamaForCausalLM`` (``from_pretrained``
gives the full, exact head); ``domain_head.safetensors`` beside it holds the
kept ids and the "other" score's weights, bias and margin, and only breedlab attaches it.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

import torch

HEAD_FILE = "domain_head.safetensors"
HEAD_FORMAT = "breedlab-domain-head/1"
HEAD_TENSORS = ("kept_ids", "other_weight", "other_bias", "margin")


def base_token_ids(tokenizer) -> set[int]:
    """The byte-level alphabet's 256 ids and every special/added id: what any text can be spelled with."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab = tokenizer.get_vocab()
    ids = {vocab[char] for char in bytes_to_unicode().values() if char in vocab}
    return ids | set(getattr(tokenizer, "added_tokens_decoder", {}) or {}) | set(tokenizer.all_special_ids)


def kept_token_ids(counts: Counter, coverage: float, always: set[int]) -> list[int]:
    """The fewest most-frequent ids whose counts reach ``coverage`` of the total, plus ``always``."""
    if not 0 < coverage <= 1:
        raise ValueError(f"coverage must be in (0, 1], got {coverage}")
    total, running, kept = sum(counts.values()), 0, set(always)
    for token, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if running >= coverage * total:
            break
        kept.add(token)
        running += count
    return sorted(kept)


def token_counts(tokenizer, texts: Iterable[str], max_tokens: int | None = None) -> Counter:
    counts: Counter = Counter()
    for text in texts:
        counts.update(tokenizer(text, add_special_tokens=False)["input_ids"])
        if max_tokens is not None and sum(counts.values()) >= max_tokens:
            break
    return counts


def covered_share(counts: Counter, kept: list[int]) -> float:
    """Share of the tokens in ``counts`` whose id is kept (coverage measured on any split)."""
    keep = set(kept)
    total = sum(counts.values())
    return sum(c for t, c in counts.items() if t in keep) / total if total else 0.0


@torch.no_grad()
def fit_other_bound(hidden: torch.Tensor, weight: torch.Tensor, kept: list[int], ridge: float = 1e-2) -> dict:
    """Fit the "other" score on calibration hidden states (N, D) of the model whose head is ``weight`` (V, D).

    Returns ``other_weight`` (D,), ``other_bias`` (1,) and ``margin`` (1,): the largest residual of
    the regression on these tokens, so that on every one of them the score is >= the true max.
    """
    keep = torch.zeros(weight.shape[0], dtype=torch.bool)
    keep[torch.tensor(kept, dtype=torch.long)] = True
    target = (hidden @ weight[~keep].T).max(dim=-1).values.double()  # (N,) the largest dropped logit
    features = torch.cat([hidden.double(), torch.ones(len(hidden), 1, dtype=torch.double)], dim=1)  # (N, D+1)
    gram = features.T @ features + ridge * torch.eye(features.shape[1], dtype=torch.double)
    beta = torch.linalg.solve(gram, features.T @ target)  # (D+1,)
    residual = target - features @ beta
    return {"other_weight": beta[:-1].float().contiguous(), "other_bias": beta[-1:].float().contiguous(),
            "margin": residual.max().reshape(1).float().contiguous(),
            "kept_ids": keep.nonzero().reshape(-1).to(torch.int32)}


@torch.no_grad()
def build_domain_head(model, tokenizer, train_texts: Iterable[str], calibration: torch.Tensor, coverage: float,
                      max_count_tokens: int = 2_000_000) -> tuple[dict, dict]:
    """(tensors, meta) of the domain head for ``model``: kept ids from ``train_texts``, the bound fitted
    on the model's own final hidden states over ``calibration`` blocks (N, S)."""
    from breedlab.cmg.teacher import final_hidden_states

    counts = token_counts(tokenizer, train_texts, max_count_tokens)
    kept = kept_token_ids(counts, coverage, base_token_ids(tokenizer))
    hidden = torch.cat([states for _, states in final_hidden_states(model, calibration)])
    hidden = hidden.reshape(-1, model.config.hidden_size)  # (N * S, D)
    tensors = fit_other_bound(hidden.float(), model.lm_head.weight.detach().float(), kept)
    meta = {"coverage": coverage, "kept": len(kept), "vocab": model.config.vocab_size,
            "train_coverage": round(covered_share(counts, kept), 6), "counted_tokens": sum(counts.values()),
            "calibration_tokens": int(calibration.numel()), "margin": round(float(tensors["margin"]), 4)}
    return tensors, meta


def save_head(tensors: dict, path: Path, meta: dict) -> None:
    import json

    from safetensors.torch import save_file

    save_file(tensors, str(path), metadata={"breedlab": json.dumps({"format": HEAD_FORMAT, **meta},
                                                                    sort_keys=True, separators=(",", ":"))})


def load_head_tensors(path: Path) -> dict:
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("breedlab", "{}"))
        if meta.get("format") != HEAD_FORMAT:
            raise ValueError(f"{path} is not a {HEAD_FORMAT} file (format {meta.get('format')!r})")
        return {name: handle.get_tensor(name) for name in HEAD_TENSORS}


class DomainHead(torch.nn.Module):
    """The LM head with a kept-vocabulary fast path for greedy decode steps (see the module docstring).

    Wraps the model's own head (``full``, untouched): outside :func:`greedy_head`, or on more
    than one position per sequence, it is exactly that head.
    """

    def __init__(self, full: torch.nn.Linear, tensors: dict):
        super().__init__()
        self.full = full
        kept = tensors["kept_ids"].long()
        dropped = torch.ones(full.out_features, dtype=torch.bool)
        dropped[kept] = False
        dropped = dropped.nonzero().squeeze(1)
        self.register_buffer("kept_ids", kept, persistent=False)  # (K,)
        self.register_buffer("dropped_ids", dropped, persistent=False)  # (V - K,)
        # The fallback computes only the dropped rows: kept + dropped is the full head, so a fallback
        # costs (V - K) / V of it on top of the fast path, not all of it.
        self.kept_head, self.dropped_head = head_rows(full, kept), head_rows(full, dropped)
        self.register_buffer("other_weight", tensors["other_weight"].float(), persistent=False)  # (D,)
        self.register_buffer("other_bias", tensors["other_bias"].float() + tensors["margin"].float(),
                             persistent=False)  # (1,): bias and margin in one
        self.greedy = False
        self.fast_positions = 0
        self.fallbacks = 0

    @property
    def weight(self) -> torch.Tensor:  # code that reads lm_head.weight (tying checks) sees the full head
        return self.full.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:  # (B, S, D) -> (B, S, V)
        if not self.greedy or hidden.shape[-2] != 1 or torch.is_grad_enabled():
            return self.full(hidden)
        flat = hidden.reshape(-1, hidden.shape[-1])  # (N, D)
        kept = self.kept_head(flat)  # (N, K)
        other = flat @ self.other_weight + self.other_bias  # (N,): upper estimate of the best dropped logit
        confident = kept.max(dim=-1).values > other  # (N,): no dropped id is expected to win
        logits = flat.new_full((flat.shape[0], self.full.out_features), torch.finfo(flat.dtype).min)
        logits[:, self.kept_ids] = kept
        if not bool(confident.all()):
            unsure = logits[~confident]  # (M, V): the kept logits are in already
            unsure[:, self.dropped_ids] = self.dropped_head(flat[~confident])
            logits[~confident] = unsure
        self.fast_positions += int(confident.sum())
        self.fallbacks += int((~confident).sum())
        return logits.reshape(*hidden.shape[:-1], -1)


class HeadRows(torch.nn.Module):
    """Rows of a float head as a buffer (a copy the model serves, not a parameter it counts or trains)."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.register_buffer("weight", weight, persistent=False)  # (rows, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (..., D) -> (..., rows)
        return torch.nn.functional.linear(x, self.weight)


def head_rows(full, ids: torch.Tensor) -> torch.nn.Module:
    """A head computing only rows ``ids`` of ``full``: its own ``rows`` if it has one (an int8 head
    keeps its int8 rows), else a copy of those float rows."""
    if hasattr(full, "rows"):
        return full.rows(ids)
    return HeadRows(full.weight.detach()[ids].clone())


def attach_domain_head(model, folder: Path) -> DomainHead | None:
    """Wrap ``model``'s LM head with the folder's domain head, if it has one; return it (or None)."""
    path = Path(folder) / HEAD_FILE
    if not path.is_file():
        return None
    head = DomainHead(model.lm_head, load_head_tensors(path))
    model.lm_head = head
    return head


@contextlib.contextmanager
def greedy_head(model):
    """Inside this block a model's domain head (if any) may take its kept-vocabulary fast path."""
    head = model.lm_head if isinstance(getattr(model, "lm_head", None), DomainHead) else None
    if head is not None:
        head.greedy = True
    try:
        yield head
    finally:
        if head is not None:
            head.greedy = False
