"""Measured latency: greedy generation of a fixed number of tokens from fixed prompts.

Every candidate gets the same prompts, the same number of new tokens (forced
with ``min_new_tokens`` so an early EOS cannot make a model look fast) and the
same repeats, on the same machine and thread count. One untimed warm-up
generation per prompt keeps one-off costs (allocator growth, first-call
dispatch) out of the numbers. A request's time covers prefill and decoding;
per-token time is request time / new tokens.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

DEFAULT_PROMPTS = (
    "def parse_config(path):\n    \"\"\"Read the settings file and",
    "The patient was admitted with swelling of the",
    "In the morning the keeper walked to the harbour and",
)
"""Fixed, domain-mixed prompts; every candidate is timed on exactly these."""


@dataclass(frozen=True)
class LatencySettings:
    prompts: tuple[str, ...] = DEFAULT_PROMPTS
    new_tokens: int = 32
    """Tokens generated per request (forced: EOS cannot end a request early)."""
    repeats: int = 3
    """Timed requests per prompt, after one untimed warm-up."""
    threads: int | None = 1
    """torch threads while timing (None: the process's). Batch-1 greedy decoding on a 2-core host is
    as fast on one thread as on two for fp32 (21.3 vs 20.8 tokens/s on SmolLM2), and int8 is steady
    on one (28.5-32.4) but swings between about 15 and 35 on two (docs/results/decode-threads-probe.txt)."""


@dataclass
class LatencyResult:
    token_ms_p50: float
    token_ms_p95: float
    request_ms_p50: float
    request_ms_p95: float
    request_ms: list[float] = field(default_factory=list)
    """Every timed request, in prompt-major order (for packets that want the raw samples)."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between ranks (numpy's default)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no samples")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def pad_id(tokenizer) -> int:
    """The id generate pads with: the tokenizer's pad token, else EOS (id 0 is a valid pad id)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def _timed_request(model, tokenizer, inputs, new_tokens: int) -> float:
    """Milliseconds for one greedy request of exactly ``new_tokens`` tokens."""
    started = time.perf_counter()
    output = model.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                            pad_token_id=pad_id(tokenizer))
    elapsed = (time.perf_counter() - started) * 1000.0
    produced = output.shape[1] - inputs["input_ids"].shape[1]
    if produced != new_tokens:
        raise RuntimeError(f"asked for {new_tokens} new tokens, generate produced {produced}")
    return elapsed


@contextlib.contextmanager
def torch_threads(threads: int | None):
    """Run the block on ``threads`` torch threads (None: leave them), then give the caller its own back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def measure_latency(model, tokenizer, settings: LatencySettings = LatencySettings()) -> LatencyResult:
    """p50/p95 latency per request and per generated token over every prompt and repeat."""
    import torch

    model.eval()
    samples: list[float] = []
    with torch_threads(settings.threads), torch.no_grad():
        for prompt in settings.prompts:
            inputs = tokenizer(prompt, return_tensors="pt")
            _timed_request(model, tokenizer, inputs, settings.new_tokens)  # warm-up, not recorded
            samples += [_timed_request(model, tokenizer, inputs, settings.new_tokens)
                        for _ in range(settings.repeats)]
    per_token = [ms / settings.new_tokens for ms in samples]
    return LatencyResult(
        token_ms_p50=percentile(per_token, 50), token_ms_p95=percentile(per_token, 95),
        request_ms_p50=percentile(samples, 50), request_ms_p95=percentile(samples, 95),
        request_ms=samples,
    )
