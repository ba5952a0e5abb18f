"""The domain head: coverage, the kept logits, and greedy decoding exact through the cluster bound."""

from __future__ import annotations

import copy
from collections import Counter

import pytest
import torch

from breedlab.cmg.blocks import token_blocks
from breedlab.cmg.domain_head import (
    HEAD_FILE,
    DomainHead,
    attach_domain_head,
    base_token_ids,
    build_domain_head,
    covered_share,
    fit_other_bound,
    greedy_head,
    kept_token_ids,
    save_head,
)
from breedlab.models.pico import PICO_TEXTS


def test_kept_ids_are_the_fewest_most_frequent_reaching_the_coverage():
    counts = Counter({5: 50, 7: 30, 9: 15, 11: 5})  # 100 tokens
    assert kept_token_ids(counts, 0.50, set()) == [5]
    assert kept_token_ids(counts, 0.80, set()) == [5, 7]
    assert kept_token_ids(counts, 0.81, set()) == [5, 7, 9]
    assert kept_token_ids(counts, 1.0, {0, 1}) == [0, 1, 5, 7, 9, 11]
    assert covered_share(counts, [5, 9]) == pytest.approx(0.65)
    assert covered_share(Counter({5: 3, 12: 1}), [5, 7]) == pytest.approx(0.75)  # held out: 12 is unseen
    with pytest.raises(ValueError, match="coverage"):
        kept_token_ids(counts, 0.0, set())


def test_base_ids_hold_the_byte_alphabet_and_the_special_tokens(pico):
    tokenizer = pico[1]
    base = base_token_ids(tokenizer)
    assert set(tokenizer.all_special_ids) <= base
    spelled = tokenizer("zqx \u00e9\u4e2d", add_special_tokens=False)["input_ids"]
    # every id of a string spelled byte by byte is a base id
    byte_ids = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.convert_ids_to_tokens(spelled) if len(t) == 1]
    assert set(byte_ids) <= base


def test_the_other_score_bounds_every_calibration_token():
    generator = torch.Generator().manual_seed(0)
    weight, hidden = torch.randn(40, 8, generator=generator), torch.randn(200, 8, generator=generator)
    kept = list(range(10))
    fit = fit_other_bound(hidden, weight, kept)
    score = hidden @ fit["other_weight"] + fit["other_bias"] + fit["margin"]
    dropped_max = (hidden @ weight[10:].T).max(dim=-1).values
    assert (score >= dropped_max - 1e-4).all() and fit["kept_ids"].tolist() == kept


@pytest.fixture(scope="module")
def headed(pico, tmp_path_factory):
    """The pico parent with a domain head kept at 80% coverage of its own texts."""
    model, tokenizer = copy.deepcopy(pico[0]).eval(), pico[1]
    calibration = token_blocks(tokenizer, PICO_TEXTS * 4, seq_len=32, max_blocks=8)
    tensors, meta = build_domain_head(model, tokenizer, PICO_TEXTS, calibration, coverage=0.8)
    kept = tensors["kept_ids"].tolist()
    assert meta["kept"] == len(kept) and meta["train_coverage"] >= 0.8
    folder = tmp_path_factory.mktemp("head")
    save_head(tensors, folder / HEAD_FILE, meta)
    reference = copy.deepcopy(model)
    head = attach_domain_head(model, folder)
    return reference, model, head, kept, tokenizer


def test_kept_logits_equal_the_full_models_and_outside_greedy_the_head_is_the_full_one(headed):
    reference, model, head, kept, tokenizer = headed
    ids = torch.tensor([tokenizer(PICO_TEXTS[0])["input_ids"][:12]])
    with torch.no_grad():
        full = reference(input_ids=ids).logits
        assert torch.equal(model(input_ids=ids).logits, full)  # scoring: exactly the full head
        with greedy_head(model):
            last = model(input_ids=ids, logits_to_keep=1).logits[0, -1]
    torch.testing.assert_close(last[kept], full[0, -1, kept])
    assert isinstance(model.lm_head, DomainHead) and len(kept) < model.config.vocab_size


def test_greedy_decoding_through_the_domain_head_is_exact_and_fallbacks_are_counted(headed):
    reference, model, head, _, tokenizer = headed
    before = (head.fast_positions, head.fallbacks)
    for prompt in ("def alpha", "the patient", "zqx"):
        inputs = tokenizer(prompt, return_tensors="pt")
        settings = dict(max_new_tokens=12, min_new_tokens=12, do_sample=False, pad_token_id=tokenizer.eos_token_id)
        with torch.no_grad():
            expected = reference.generate(**inputs, **settings)
            with greedy_head(model):
                got = model.generate(**inputs, **settings)
        assert torch.equal(got, expected), prompt
    fast, fell = head.fast_positions - before[0], head.fallbacks - before[1]
    assert fast + fell == 3 * 12 and fast > 0 and fell > 0  # both paths ran, and greedy stayed exact
