"""Text generation with one loaded model: greedy or temperature/top-p sampling, seeded, streamed.

A plain token loop with the model's KV cache rather than ``model.generate``:
each request owns a ``torch.Generator`` (so a seeded request is reproducible
even while other requests sample at the same time; ``generate`` draws from the
global RNG), and the loop yields text as it goes, which is what streaming needs.

Text is emitted by decoding all generated ids and sending what is new, holding
back (a) a trailing U+FFFD (a multi-byte character cut in half) and (b) as many
characters as the longest stop string minus one, so a stop string is never
half-sent before it is recognised.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

REPLACEMENT = "\ufffd"
MIN_TEMPERATURE = 1e-4


@dataclass(frozen=True)
class Sampling:
    """How one request generates."""

    max_new_tokens: int
    temperature: float = 0.0
    """0 = greedy (argmax)."""
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    deadline: float | None = None
    """``time.monotonic()`` after which no further token is generated (finish_reason 'length')."""


@dataclass
class Generation:
    """One generation in progress: iterate ``deltas()``; afterwards read the totals."""

    model: object
    tokenizer: object
    prompt_ids: list[int]
    sampling: Sampling
    eos_ids: frozenset[int] = frozenset()
    text: str = ""
    completion_tokens: int = 0
    finish_reason: str = "length"
    cancel: threading.Event = field(default_factory=threading.Event)
    """Set from another thread (the client left): no further token is generated."""
    _ids: list[int] = field(default_factory=list)

    def deltas(self) -> Iterator[str]:
        """The answer's text in pieces, as soon as each is safe to send."""
        sent = 0
        hold = max((len(s) for s in self.sampling.stop), default=1) - 1
        for token in _token_ids(self.model, self.prompt_ids, self.sampling, self.cancel):
            if token in self.eos_ids:
                self.finish_reason = "stop"
                break
            self._ids.append(token)
            self.completion_tokens += 1
            text = self.tokenizer.decode(self._ids, skip_special_tokens=True)
            cut = _first_stop(text, self.sampling.stop)
            if cut is not None:
                self.text, self.finish_reason = text[:cut], "stop"
                break
            self.text = text
            safe = len(text) - hold
            while safe > sent and text[safe - 1] == REPLACEMENT:
                safe -= 1
            if safe > sent:
                yield text[sent:safe]
                sent = safe
        if len(self.text) > sent:
            yield self.text[sent:]

    def run(self) -> str:
        """Generate to the end; the whole answer."""
        for _ in self.deltas():
            pass
        return self.text


def _first_stop(text: str, stops: tuple[str, ...]) -> int | None:
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


@torch.no_grad()
def _token_ids(model, prompt_ids: list[int], sampling: Sampling, cancel: threading.Event) -> Iterator[int]:
    """Next-token ids, one forward pass each over the new token with the KV cache, until cancelled."""
    generator = torch.Generator().manual_seed(sampling.seed)
    ids = torch.tensor([prompt_ids], dtype=torch.long)  # (1, T) prompt, then (1, 1) per step
    past = None
    for _ in range(sampling.max_new_tokens):
        if cancel.is_set() or (sampling.deadline is not None and time.monotonic() > sampling.deadline):
            return
        out = model(input_ids=ids, past_key_values=past, use_cache=True)
        past = out.past_key_values
        token = pick(out.logits[0, -1].float(), sampling, generator)  # logits (V,)
        yield token
        ids = torch.tensor([[token]], dtype=torch.long)


def pick(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """Greedy at temperature ~0; else nucleus sampling (Holtzman et al. 2020) at ``temperature``.

    Below MIN_TEMPERATURE the distribution is the argmax to machine precision, and dividing by a
    tiny temperature overflows to inf (NaN probabilities): such requests are greedy. Scaling runs
    in float64 for the same reason. Non-finite logits (a broken model) also fall back to greedy.
    """
    if sampling.temperature < MIN_TEMPERATURE or not bool(torch.isfinite(logits).all()):
        return int(torch.argmax(torch.nan_to_num(logits, nan=-torch.inf)))
    probs = torch.softmax(logits.double() / sampling.temperature, dim=-1)  # (V,)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= sampling.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


@torch.no_grad()
def mean_nll(model, tokenizer, text: str, max_tokens: int) -> float:
    """Mean next-token NLL (nats) of ``text`` under ``model``, over at most ``max_tokens`` tokens."""
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][:, :max_tokens]
    if ids.shape[1] < 2:
        return float("nan")
    logits = model(input_ids=ids).logits[0, :-1].float()  # (T-1, V)
    return float(torch.nn.functional.cross_entropy(logits, ids[0, 1:]))


def eos_ids(tokenizer) -> frozenset[int]:
    """The token ids that end an answer."""
    eos = getattr(tokenizer, "eos_token_id", None)
    return frozenset([eos] if isinstance(eos, int) else (eos or []))
