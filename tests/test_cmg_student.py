"""CMG step 2, student initialisation: shape solver, selection strategies, copied weights."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from transformers import LlamaConfig

from breedlab.cmg.profile import Profile, profile_model
from breedlab.cmg.student import (
    PRUNED,
    STRATEGIES,
    StudentPlan,
    StudentShape,
    by_influence,
    count_student_params,
    plan_student,
    select_parts,
)
from breedlab.cmg.student_weights import build_student
from breedlab.models.io import count_parameters, load_model, save_model, weights_digest
from breedlab.models.pico import build_pico_model

HEAD_DIM = 16
RATIOS = (0.05, 0.1, 0.3, 0.5)
# The 4-layer pico parent is too small for these: its embeddings (32,832 of 180,800
# parameters) exceed 5% and 10% of the total, and one minimal layer (8,576) exceeds
# 5% of the non-embedding parameters (7,402) since every kv head is kept.
PICO_INFEASIBLE = {(0.05, False), (0.05, True), (0.1, True)}
# 'mixed' takes its depth from the proxy search (test_cmg_shape_search.py); every other strategy plans alone.
PLANNED = tuple(s for s in STRATEGIES if s != "mixed")
# Width pruning keeps every layer, each with all its kv heads, and depth pruning at least two
# layers: below those sizes no plan exists, and saying so is the right answer.
INFEASIBLE_PRUNE = "use a larger ratio|at least 2 layers"
SMOLLM2_SHAPED = LlamaConfig(
    hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
    intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True,
)


@pytest.fixture(scope="module")
def profile(pico, blocks):
    return profile_model(pico[0], blocks)


@pytest.fixture(scope="module")
def rigged(pico, blocks):
    """The pico parent with layer 2 (o_proj, down_proj), head 1 of layer 3 and neuron 17
    of layer 1 made 50x louder, and its profile.

    The head is rigged in layer 3, not layer 0: importance of a layer is its update
    relative to its input, and layer 0's input (the embeddings) is small, so a loud
    head there makes layer 0, not layer 2, the top layer. Layer 3 reads the stream
    that layer 2 made large, so its relative update stays low.
    """
    model = copy.deepcopy(pico[0])
    layers = model.model.layers
    with torch.no_grad():
        layers[2].self_attn.o_proj.weight.mul_(50)
        layers[2].mlp.down_proj.weight.mul_(50)
        layers[3].self_attn.o_proj.weight[:, 1 * HEAD_DIM:2 * HEAD_DIM].mul_(50)
        layers[1].mlp.down_proj.weight[:, 17].mul_(50)
    return model, profile_model(model, blocks)


def _top(scores: torch.Tensor, k: int) -> set[int]:
    return set(scores.argsort(descending=True, stable=True)[:k].tolist())


def _assert_kept_parts_are_the_top_ranked(plan: StudentPlan, profile: Profile) -> None:
    assert set(plan.layers) == _top(profile.layer_importance, len(plan.layers))
    assert list(plan.layers) == sorted(plan.layers)  # kept in the parent's order
    per_group = len(plan.heads[0]) // 2
    for layer, heads, neurons in zip(plan.layers, plan.heads, plan.neurons, strict=True):
        for group in range(2):  # pico: 2 kv heads, query heads {0, 1} and {2, 3}
            scores = profile.head_importance[layer, 2 * group:2 * group + 2]
            assert {h for h in heads if h // 2 == group} == {2 * group + i for i in _top(scores, per_group)}
        assert set(neurons) == _top(profile.neuron_importance[layer], len(neurons))


def test_the_rig_moves_the_ranking(profile, rigged):
    """The untouched parent does not rank the rigged parts top; the rigged one does."""
    rig = rigged[1]
    assert profile.ranked_layers()[0] != 2 and rig.ranked_layers()[0] == 2
    assert profile.head_importance[3, 0] > profile.head_importance[3, 1]
    assert rig.head_importance[3, 1] > rig.head_importance[3, 0]
    assert 17 not in _top(profile.neuron_importance[1], 32)
    assert rig.neuron_importance[1].argmax().item() == 17


@pytest.mark.parametrize("ratio", (0.1, 0.3, 0.5))
def test_profiled_plan_keeps_the_top_ranked_parts(rigged, ratio):
    plan = plan_student(rigged[0].config, ratio=ratio, strategy="profiled", profile=rigged[1])
    assert 2 in plan.layers
    _assert_kept_parts_are_the_top_ranked(plan, rigged[1])


def test_profiled_selection_keeps_the_rigged_head_and_neuron(rigged):
    narrow = StudentShape(layers=3, heads_per_group=1, intermediate=32)
    layers, heads, neurons = select_parts(rigged[0].config, narrow, strategy="profiled", profile=rigged[1])
    assert layers == (0, 1, 2) and 17 in neurons[1]  # layer 3 ranks last
    all_layers = replace(narrow, layers=4)
    layers, heads, neurons = select_parts(rigged[0].config, all_layers, strategy="profiled", profile=rigged[1])
    assert 1 in heads[3] and 0 not in heads[3]  # the untouched parent would keep head 0


def _plan_unless_too_small_to_prune(config, **kwargs):
    """The plan, or None where a pruned strategy (only) has no shape at this ratio."""
    if kwargs["strategy"] not in PRUNED:
        return plan_student(config, **kwargs)
    try:
        return plan_student(config, **kwargs)
    except ValueError as error:
        assert any(why in str(error) for why in INFEASIBLE_PRUNE.split("|")), error
        return None


@pytest.mark.parametrize("strategy", PLANNED)
@pytest.mark.parametrize("count_embeddings", (False, True))
def test_built_pico_students_have_the_planned_size(pico, profile, strategy, count_embeddings):
    for ratio in RATIOS:
        kwargs = {"ratio": ratio, "strategy": strategy, "profile": profile, "count_embeddings": count_embeddings}
        if (ratio, count_embeddings) in PICO_INFEASIBLE:
            with pytest.raises(ValueError, match="embeddings alone|" + INFEASIBLE_PRUNE):
                plan_student(pico[0].config, **kwargs)
            continue
        plan = _plan_unless_too_small_to_prune(pico[0].config, **kwargs)
        if plan is None:
            continue
        student = build_student(pico[0], plan)
        assert count_parameters(student, include_embeddings=count_embeddings) == plan.student_params
        assert abs(plan.student_params - plan.target_params) <= 0.02 * plan.target_params


@pytest.mark.parametrize("strategy", tuple(s for s in PLANNED if s not in PRUNED))
def test_the_smallest_ratio_fits_a_deeper_pico(pico, strategy):
    model = build_pico_model(pico[1], layers=8, intermediate=256)
    scores = Profile(torch.rand(8), torch.rand(8, 4), torch.rand(8, 256), tokens=1)
    plan = plan_student(model.config, ratio=0.05, strategy=strategy, profile=scores)
    assert plan.heads[0] in ((0, 2), (1, 3), (0, 3), (1, 2))  # one query head per kv group
    student = build_student(model, plan)
    assert count_parameters(student, include_embeddings=False) == plan.student_params
    assert abs(plan.student_params - plan.target_params) <= 0.02 * plan.target_params


@pytest.mark.parametrize("strategy", PLANNED)
@pytest.mark.parametrize("count_embeddings", (False, True))
def test_smollm2_shaped_plans_are_within_two_percent(strategy, count_embeddings):
    generator = torch.Generator().manual_seed(0)
    scores = Profile(*(torch.rand(shape, generator=generator) for shape in ((30,), (30, 9), (30, 1536))), tokens=1,
                     block_influence=torch.rand(30, generator=generator))
    for ratio in RATIOS:
        kwargs = {"ratio": ratio, "strategy": strategy, "profile": scores, "count_embeddings": count_embeddings}
        if count_embeddings and ratio <= 0.1:  # 28.3M embedding parameters > 10% of 134.5M
            with pytest.raises(ValueError, match="embeddings alone"):
                plan_student(SMOLLM2_SHAPED, **kwargs)
            continue
        plan = _plan_unless_too_small_to_prune(SMOLLM2_SHAPED, **kwargs)
        if plan is None:
            # 30 layers, each with whole k/v projections, one query head per group and one neuron
            smallest = count_student_params(SMOLLM2_SHAPED, StudentShape(30, 1, 1), count_embeddings=count_embeddings)
            total = count_student_params(SMOLLM2_SHAPED, StudentShape(30, 3, 1536), count_embeddings=count_embeddings)
            assert strategy == "width" and ratio * total < 0.98 * smallest
            continue
        assert abs(plan.student_params - plan.target_params) <= 0.02 * plan.target_params
        shape = StudentShape(len(plan.layers), len(plan.heads[0]) // 3, len(plan.neurons[0]))
        assert count_student_params(SMOLLM2_SHAPED, shape, count_embeddings=count_embeddings) == plan.student_params
        assert {len(h) % 3 for h in plan.heads} == {0}  # the same query heads per kv group


def test_parent_size_matches_count_parameters(pico):
    full = StudentShape(4, 2, 128)
    for embeddings in (False, True):
        assert count_student_params(pico[0].config, full, count_embeddings=embeddings) == count_parameters(
            pico[0], include_embeddings=embeddings)


def test_bad_requests_raise_clear_errors(pico, profile):
    config = pico[0].config
    with pytest.raises(ValueError, match=r"below the embeddings alone.*count_embeddings=False"):
        plan_student(config, ratio=0.05, strategy="uniform", count_embeddings=True)
    with pytest.raises(ValueError, match="unknown strategy 'pruned'"):
        plan_student(config, ratio=0.3, strategy="pruned")
    with pytest.raises(ValueError, match="needs a profile"):
        plan_student(config, ratio=0.3, strategy="profiled")
    with pytest.raises(ValueError, match="ratio must be"):
        plan_student(config, ratio=1.5, strategy="uniform")
    wrong = Profile(torch.ones(3), torch.ones(3, 4), torch.ones(3, 128), tokens=1)
    with pytest.raises(ValueError, match="do not fit this parent"):
        plan_student(config, ratio=0.3, strategy="profiled", profile=wrong)
    with pytest.raises(ValueError, match="different size"):
        build_student(pico[0], plan_student(SMOLLM2_SHAPED, ratio=0.3, strategy="uniform"))


def test_keeping_everything_reproduces_the_parent(pico, profile, blocks):
    plan = plan_student(pico[0].config, ratio=1.0, strategy="profiled", profile=profile)
    assert plan.layers == (0, 1, 2, 3) and plan.student_params == plan.parent_params
    student = build_student(pico[0], plan)
    with torch.no_grad():
        assert torch.equal(student(blocks).logits, pico[0](blocks).logits)


def test_dropping_layers_equals_the_parent_without_them(pico, blocks):
    full = plan_student(pico[0].config, ratio=1.0, strategy="uniform")
    plan = replace(full, layers=(0, 2, 3), heads=full.heads[:3], neurons=full.neurons[:3])
    reference = copy.deepcopy(pico[0])
    reference.model.layers = torch.nn.ModuleList([reference.model.layers[i] for i in plan.layers])
    reference.config.num_hidden_layers = 3
    with torch.no_grad():  # no cache: the reference's layers keep their old layer_idx
        expected = reference(blocks, use_cache=False).logits
        assert torch.equal(build_student(pico[0], plan)(blocks, use_cache=False).logits, expected)


def test_building_never_touches_the_parent(pico, profile):
    before = weights_digest(pico[0])
    plan = plan_student(pico[0].config, ratio=0.5, strategy="profiled", profile=profile)
    student = build_student(pico[0], plan)
    with torch.no_grad():
        for param in student.parameters():
            param.add_(1.0)  # a student in training must not write through to the parent
    assert weights_digest(pico[0]) == before
    parent_storage = {p.data_ptr() for p in pico[0].parameters()}
    assert not parent_storage & {p.data_ptr() for p in student.parameters()}


def test_strategies_choose_differently_on_the_rigged_parent(rigged):
    config, rig = rigged[0].config, rigged[1]
    profiled = plan_student(config, ratio=0.3, strategy="profiled", profile=rig)
    uniform = plan_student(config, ratio=0.3, strategy="uniform")
    assert profiled.layers == (0, 2) and uniform.layers == (0, 3)  # evenly spaced: first and last
    randoms = {plan_student(config, ratio=0.3, strategy="random", seed=seed).layers for seed in range(5)}
    assert len(randoms) > 1 and randoms != {profiled.layers}


def test_scratch_has_the_same_shape_but_fresh_weights(rigged):
    model = rigged[0]
    profiled = build_student(model, plan_student(model.config, ratio=0.3, strategy="profiled", profile=rigged[1]))
    scratch = build_student(model, plan_student(model.config, ratio=0.3, strategy="scratch"))
    shapes = {name: t.shape for name, t in profiled.state_dict().items()}
    assert {name: t.shape for name, t in scratch.state_dict().items()} == shapes
    assert not torch.equal(scratch.model.embed_tokens.weight, model.model.embed_tokens.weight)
    std = scratch.model.layers[0].mlp.up_proj.weight.std().item()
    assert std == pytest.approx(model.config.initializer_range, rel=0.2)


@pytest.mark.parametrize("strategy", PLANNED)
def test_same_seed_same_student(pico, profile, strategy):
    plans = [plan_student(pico[0].config, ratio=0.3, strategy=strategy, profile=profile, seed=3) for _ in range(2)]
    assert plans[0] == plans[1]
    digests = {weights_digest(build_student(pico[0], plans[0], seed=3)) for _ in range(2)}
    assert len(digests) == 1


def test_plan_serialises_and_hashes_its_selection(pico, profile):
    plan = plan_student(pico[0].config, ratio=0.3, strategy="profiled", profile=profile)
    assert StudentPlan.from_dict(plan.to_dict()) == plan
    summary = plan.summary()
    assert "neurons" not in summary and summary["sha256"] == plan.sha256
    assert (summary["num_hidden_layers"], summary["num_attention_heads"]) == (2, 4)
    moved = replace(plan, neurons=(plan.neurons[0][:-1] + (127,), plan.neurons[1]))
    assert moved.sha256 != plan.sha256


def test_students_save_and_load_like_any_model(pico, profile, blocks, tmp_path):
    plan = plan_student(pico[0].config, ratio=0.1, strategy="profiled", profile=profile)
    student = build_student(pico[0], plan)
    loaded, _ = load_model(save_model(student, pico[1], tmp_path / "student"))
    assert (loaded.config.num_attention_heads, loaded.config.head_dim) == (2, HEAD_DIM)
    with torch.no_grad():
        assert torch.equal(loaded(blocks).logits, student(blocks).logits)


def test_width_pruning_keeps_every_layer_and_the_top_ranked_heads_and_channels(rigged):
    config, rig = rigged[0].config, rigged[1]
    plan = plan_student(config, ratio=0.5, strategy="width", profile=rig)
    assert plan.layers == (0, 1, 2, 3) and len(plan.neurons[0]) < config.intermediate_size
    _assert_kept_parts_are_the_top_ranked(plan, rig)
    assert 17 in plan.neurons[1]  # the rigged neuron
    narrow = StudentShape(layers=4, heads_per_group=1, intermediate=32)
    layers, heads, neurons = select_parts(config, narrow, strategy="width", profile=rig)
    assert layers == (0, 1, 2, 3) and 1 in heads[3] and 0 not in heads[3]  # the rigged head, in its group
    for kept in heads:  # GQA stays whole: one query head in each of the two kv groups
        assert sorted(h // 2 for h in kept) == [0, 1]
    assert all(set(n) == _top(rig.neuron_importance[layer], 32) for layer, n in zip(layers, neurons))


@pytest.fixture(scope="module")
def identity_layer(pico, blocks):
    """The pico parent with layer 2 writing nothing (o_proj and down_proj zeroed): an identity block."""
    model = copy.deepcopy(pico[0])
    with torch.no_grad():
        model.model.layers[2].self_attn.o_proj.weight.zero_()
        model.model.layers[2].mlp.down_proj.weight.zero_()
    return model, profile_model(model, blocks)


def test_block_influence_ranks_an_identity_layer_last_and_depth_pruning_drops_it(identity_layer):
    model, profile = identity_layer
    influence = profile.block_influence
    assert influence[2].item() == pytest.approx(0.0, abs=1e-6)
    assert int(influence.argmin()) == 2 and (influence[[0, 1, 3]] > 1e-3).all()
    plan = plan_student(model.config, ratio=0.75, strategy="depth", profile=profile)
    assert plan.layers == (0, 1, 3)


def test_depth_pruning_protects_the_first_and_last_layers():
    influence = torch.tensor([0.0, 0.5, 0.1, 0.9, 0.0])  # the ends have the lowest influence
    assert by_influence(influence, 3) == [0, 3, 4]
    assert by_influence(influence, 5) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="at least 2 layers"):
        by_influence(influence, 1)


def test_mixed_needs_its_depth_and_pruned_strategies_need_block_influence(pico, profile):
    with pytest.raises(ValueError, match="proxy search"):
        plan_student(pico[0].config, ratio=0.5, strategy="mixed", profile=profile)
    old = Profile(profile.layer_importance, profile.head_importance, profile.neuron_importance, tokens=1)
    with pytest.raises(ValueError, match="block influence"):
        plan_student(pico[0].config, ratio=0.5, strategy="width", profile=old)
