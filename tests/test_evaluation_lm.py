"""LM scores agree with transformers' own loss and a hand count of correct predictions."""

from __future__ import annotations

import math

import torch

from breedlab.cmg.blocks import token_blocks
from breedlab.evaluation.lm import generation_speed, score_lm
from breedlab.models.io import load_model
from breedlab.models.pico import PICO_TEXTS


def test_perplexity_and_accuracy_match_a_direct_computation(pico_parent_dir):
    model, tokenizer = load_model(pico_parent_dir)
    blocks = token_blocks(tokenizer, PICO_TEXTS * 4, seq_len=32)
    scores = score_lm(model, blocks, batch_size=3)
    with torch.no_grad():
        loss = model(input_ids=blocks, labels=blocks).loss.item()  # mean CE over shifted tokens
        logits = model(input_ids=blocks).logits
    correct = (logits[:, :-1].argmax(-1) == blocks[:, 1:]).sum().item()
    assert scores.tokens == blocks.shape[0] * 31
    assert math.isclose(scores.perplexity, math.exp(loss), rel_tol=1e-4)
    assert scores.correct == correct and len(scores.block_nll) == blocks.shape[0]


def test_generation_speed_is_positive(pico_parent_dir):
    model, tokenizer = load_model(pico_parent_dir)
    assert generation_speed(model, tokenizer, "The lighthouse", new_tokens=8, repeats=1) > 0
