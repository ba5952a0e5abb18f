"""The server's token loop on the pico parent: greedy, seeded sampling, stop strings, extreme settings."""

from __future__ import annotations

import math

import pytest
import torch

from breedlab.engines.hf import HFEngine
from breedlab.server.generation import Generation, Sampling, eos_ids, mean_nll, pick


def _generate(pico, prompt: str, **sampling) -> Generation:
    model, tokenizer = pico
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    sampling = Sampling(**{"max_new_tokens": 24, **sampling})
    generation = Generation(HFEngine(model), tokenizer, ids, sampling, eos_ids(tokenizer))
    generation.pieces = list(generation.deltas())
    return generation


@pytest.mark.parametrize("temperature", [1e-300, 1e-6, 1e-4, 0.7, 2.0])
@pytest.mark.parametrize("top_p", [1e-300, 0.5, 1.0])
def test_pick_never_fails_on_extreme_temperature_or_top_p(temperature, top_p):
    logits = torch.randn(512, generator=torch.Generator().manual_seed(0)) * 30  # (V,)
    token = pick(logits, Sampling(1, temperature=temperature, top_p=top_p), torch.Generator().manual_seed(1))
    assert 0 <= token < 512
    if temperature < 1e-4 or top_p < 1e-6:
        assert token == int(torch.argmax(logits))  # the limit of sampling is greedy


def test_non_finite_logits_fall_back_to_greedy():
    logits = torch.tensor([0.0, float("nan"), 3.0, float("inf")])
    assert pick(logits, Sampling(1, temperature=1.0), torch.Generator()) == 3


def test_streamed_pieces_add_up_to_the_answer_and_greedy_is_deterministic(pico):
    first, second = _generate(pico, "the cat sat"), _generate(pico, "the cat sat")
    assert "".join(first.pieces) == first.text == second.text
    assert first.completion_tokens <= 24 and first.finish_reason in ("stop", "length")


def test_a_seed_reproduces_a_sampled_answer(pico):
    runs = [_generate(pico, "the cat sat", temperature=1.0, seed=s).text for s in (3, 3, 4, 5, 6)]
    assert runs[0] == runs[1] and len(set(runs[1:])) > 1


def test_a_stop_string_ends_the_answer_and_is_never_sent(pico):
    free = _generate(pico, "the cat sat", temperature=1.0, seed=3)
    stop = free.text[len(free.text) // 2:][:3]
    assert stop.strip()
    cut = _generate(pico, "the cat sat", temperature=1.0, seed=3, stop=(stop,))
    assert cut.finish_reason == "stop" and stop not in cut.text and "".join(cut.pieces) == cut.text
    assert free.text.startswith(cut.text)


def test_mean_nll_is_finite_for_text_and_nan_for_a_single_token(pico):
    model, tokenizer = pico
    assert math.isfinite(mean_nll(model, tokenizer, "the cat sat on the mat", 64))
    assert math.isnan(mean_nll(model, tokenizer, "a", 64))
