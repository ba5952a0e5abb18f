"""How a request picks its next token, the same on every engine.

Every backend that exposes next-token logits (``hf``, ``llamacpp``) samples
through :func:`pick` with the request's own ``torch.Generator``, so a seeded
request draws the same tokens whichever engine runs it, and greedy decoding is
an argmax over the engine's logits. The server's generation loop and the
engines' decode loops both import it from here.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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

    @property
    def greedy(self) -> bool:
        return self.temperature < MIN_TEMPERATURE


def pick(logits: torch.Tensor, sampling: Sampling, generator: torch.Generator) -> int:
    """Greedy at temperature ~0; else nucleus sampling (Holtzman et al. 2020) at ``temperature``.

    Below MIN_TEMPERATURE the distribution is the argmax to machine precision, and dividing by a
    tiny temperature overflows to inf (NaN probabilities): such requests are greedy. Scaling runs
    in float64 for the same reason. Non-finite logits (a broken model) also fall back to greedy.
    """
    if sampling.greedy or not bool(torch.isfinite(logits).all()):
        return int(torch.argmax(torch.nan_to_num(logits, nan=-torch.inf)))
    probs = torch.softmax(logits.double() / sampling.temperature, dim=-1)  # (V,)
    if sampling.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest prefix whose mass reaches top_p (the first token always stays)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= sampling.top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))
