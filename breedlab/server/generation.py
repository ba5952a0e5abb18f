"""Text generation with one loaded engine: greedy or temperature/top-p sampling, seeded, streamed.

The engine (``breedlab.engines``: hf, llama.cpp or CTranslate2) runs the token
loop with its KV cache; each request owns a ``torch.Generator`` (so a seeded
request is reproducible even while other requests sample at the same time;
``model.generate`` draws from the global RNG), and this loop turns the ids into
text as they come, which is what streaming needs.

Text is emitted by decoding all generated ids and sending what is new, holding
back (a) a trailing U+FFFD (a multi-byte character cut in half) and (b) as many
characters as the longest stop string minus one, so a stop string is never
half-sent before it is recognised.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from breedlab.engines import Engine
from breedlab.engines.sampling import MIN_TEMPERATURE, Sampling, pick

__all__ = ["MIN_TEMPERATURE", "Generation", "Sampling", "eos_ids", "mean_nll", "pick"]

REPLACEMENT = "\ufffd"


@dataclass
class Generation:
    """One generation in progress: iterate ``deltas()``; afterwards read the totals."""

    engine: Engine
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
        for token in self.engine.token_ids(self.prompt_ids, self.sampling, self.cancel):
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
