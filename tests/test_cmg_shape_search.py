"""The mixed strategy's proxy search: candidates, their untrained KL, the choice, and the depth bound."""

from __future__ import annotations

import pytest
import torch

from breedlab.cmg.profile import profile_model
from breedlab.cmg.recipe import CMGRecipe
from breedlab.cmg.shape_search import proxy_kl, search_depth, search_size
from breedlab.cmg.student import plan_student
from breedlab.cmg.student_weights import build_student


@pytest.fixture(scope="module")
def profile(pico, blocks):
    return profile_model(pico[0], blocks)


def test_the_search_scores_each_depth_and_keeps_the_lowest_kl(pico, profile, blocks):
    recipe = CMGRecipe(domain="code", ratio=0.7, strategy="mixed", max_depth_drop=0.25)
    seen = []  # the progress callback: the calibration tokens once per candidate, adding up to its total
    record = search_depth(pico[0], profile, recipe, blocks, on_tokens=seen.append)
    assert seen == [blocks.numel()] * 2 and sum(seen) == search_size(recipe, 4, blocks.numel())
    feasible = [c for c in record["candidates"] if c["feasible"]]
    assert [c["layers"] for c in record["candidates"]] == [4, 3]  # 25% of 4 layers: at most one dropped
    best = min(feasible, key=lambda c: c["proxy_kl"])
    assert record["chosen_layers"] == best["layers"] and not record["max_depth_drop_exceeded"]
    assert all(c["proxy_kl"] > 0 for c in feasible)


def test_the_proxy_is_zero_for_the_parent_itself(pico, blocks):
    whole = build_student(pico[0], plan_student(pico[0].config, ratio=1.0, strategy="uniform"))
    states = [pico[0].model(input_ids=blocks[i:i + 4]).last_hidden_state for i in range(0, len(blocks), 4)]
    assert proxy_kl(pico[0], whole, blocks, states, 4) == pytest.approx(0.0, abs=1e-5)


def test_a_ratio_too_small_for_the_depth_bound_goes_deeper_and_says_so(pico, profile, blocks):
    # p = 0.15 of the pico's non-embedding parameters fits 2 layers, not 3 or 4 (every kv head is kept)
    recipe = CMGRecipe(domain="code", ratio=0.15, strategy="mixed", max_depth_drop=0.25)
    record = search_depth(pico[0], profile, recipe, blocks)
    assert record["max_depth_drop_exceeded"] and record["chosen_layers"] == 2
    assert [c["feasible"] for c in record["candidates"]] == [False, False, True]
    assert record["candidates"][0]["reason"].startswith("cannot plan 0.15")


def test_a_speed_target_takes_the_lowest_kl_among_the_shapes_fast_enough(pico, profile, blocks):
    rigged = lambda student: 1.5 if student.config.num_hidden_layers == 3 else 1.0  # noqa: E731
    recipe = CMGRecipe(domain="code", ratio=0.7, strategy="mixed", max_depth_drop=0.25, min_speedup=1.2)
    record = search_depth(pico[0], profile, recipe, blocks, speedup=rigged)
    assert [c["speedup"] for c in record["candidates"]] == [1.0, 1.5]
    assert record["chosen_layers"] == 3 and ">= 1.2x" in record["choice"] and record["min_speedup"] == 1.2
    # a target no shape reaches: the fastest one, and the record says none reached it
    unreachable = search_depth(pico[0], profile, CMGRecipe(domain="code", ratio=0.7, strategy="mixed",
                                                           max_depth_drop=0.25, min_speedup=9.0),
                               blocks, speedup=rigged)
    assert unreachable["chosen_layers"] == 3 and "none reached 9.0x" in unreachable["choice"]
    # without a target nothing is timed and the record is as it always was
    plain = search_depth(pico[0], profile, CMGRecipe(domain="code", ratio=0.7, strategy="mixed"), blocks,
                         speedup=rigged)
    assert "choice" not in plain and all("speedup" not in c for c in plain["candidates"])
    with pytest.raises(ValueError, match="min_speedup"):
        CMGRecipe(domain="code", min_speedup=0.0)


def test_the_measured_speedup_times_fp16_students_against_the_fp16_parent(pico, blocks):
    from breedlab.cmg.shape_speed import as_fp16, decode_speedup
    from breedlab.models.kernels.half import Fp16Linear

    parent = pico[0]
    served = as_fp16(parent)
    assert isinstance(served.lm_head, Fp16Linear) and not isinstance(parent.lm_head, Fp16Linear)  # a copy
    with torch.no_grad():
        ids = blocks[:1, :12]
        assert (served(input_ids=ids).logits - parent(input_ids=ids).logits).abs().max() < 1e-2
    threads = torch.get_num_threads()
    ratio = decode_speedup(served, parent, blocks[:1, :8], rounds=1)
    assert ratio > 0 and torch.get_num_threads() == threads  # the caller's threads come back
    # and the search's own default times every feasible candidate that way
    timed = search_depth(parent, profile_model(parent, blocks), CMGRecipe(domain="code", ratio=0.7,
                         strategy="mixed", max_depth_drop=0.25, min_speedup=0.01), blocks)
    assert all(c["speedup"] > 0 for c in timed["candidates"] if c["feasible"]) and "lowest KL among" in timed["choice"]
