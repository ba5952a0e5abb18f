"""Weight merging (linear, TIES) by hand on tiny tensors, the compatibility check, and the distillation fallback."""

from __future__ import annotations

import pytest
import torch

from breedlab.cmg.multi_teacher import LiveTeacher, MixedPools
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab, synthetic_documents
from breedlab.models.io import load_model
from breedlab.models.parent import import_parent
from breedlab.models.pico import build_pico_parent
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe
from breedlab.operators.merge import IncompatibleMerge, MergeRecipe, linear_merge, merge_problems, ties_merge, trim
from breedlab.operators.merge_distill import MergeDistillRecipe
from breedlab.operators.merge_methods import dare_merge, tensor_seed
from breedlab.operators.table import get_operator
from breedlab.registry import Registry, verify

TINY = {"steps": 6, "batch_size": 2, "seq_len": 32, "lora_rank": 4, "lora_alpha": 8, "pool_tokens": 512,
        "rehearsal_pool_tokens": 256, "warmup_steps": 2}
OPTIONS = RunOptions(progress=False, threads=1, checkpoint_every=100, actor="breeder")


def t(*values):
    return torch.tensor(values, dtype=torch.float32)


# ----- the arithmetic, by hand -------------------------------------------------------------------


def test_linear_is_the_weighted_average():
    assert torch.equal(linear_merge([t(1, -2, 3), t(3, 1, -1)], (1.0, 1.0)), t(2, -0.5, 1))
    assert torch.allclose(linear_merge([t(1, -2, 3), t(3, 1, -1)], (1.0, 3.0)), t(2.5, 0.25, 0))


def test_trim_keeps_the_largest_magnitudes():
    assert torch.equal(trim(t(0.1, -5, 2, -0.3, 4), 0.4), t(0, -5, 0, 0, 4))  # ceil(0.4 * 5) = 2 kept
    assert torch.equal(trim(t(0.1, -5, 2, -0.3, 4), 1.0), t(0.1, -5, 2, -0.3, 4))
    assert torch.equal(trim(t(1, -1, 0.5), 0.3), t(1, -1, 0))  # a tie at the threshold keeps both


def test_ties_elects_the_sign_by_mass_and_averages_only_the_agreeing_values():
    base = t(1, 1, 1)
    # task vectors (1, -2, 3) and (3, 1, -1): sums (4, -1, 2) elect (+, -, +)
    merged = ties_merge(base, [base + t(1, -2, 3), base + t(3, 1, -1)], (1.0, 1.0), density=1.0, scaling=1.0)
    assert torch.allclose(merged, base + t(2, -2, 3))  # (1+3)/2; only -2 agrees; only 3 agrees
    weighted = ties_merge(base, [base + t(1, -2, 3), base + t(3, 1, -1)], (1.0, 3.0), density=1.0, scaling=0.5)
    # weighted sums (10, 1, 0) elect (+, +, 0): (1*1 + 3*3)/4 = 2.5; only 3*1/3 = 1 agrees; a tie merges to 0
    assert torch.allclose(weighted, base + 0.5 * t(2.5, 1, 0))


def test_dare_is_deterministic_with_its_seed_and_keeps_the_expected_task_vector():
    base = torch.zeros(20_000)
    models = [torch.full((20_000,), 1.0), torch.full((20_000,), 3.0)]
    first = dare_merge(base, models, (1.0, 1.0), density=0.3, scaling=1.0, seed=tensor_seed(7, "w"))
    again = dare_merge(base, models, (1.0, 1.0), density=0.3, scaling=1.0, seed=tensor_seed(7, "w"))
    other = dare_merge(base, models, (1.0, 1.0), density=0.3, scaling=1.0, seed=tensor_seed(8, "w"))
    assert torch.equal(first, again) and not torch.equal(first, other)
    allowed = torch.tensor([0.0, 1 / 0.3 / 2, 3 / 0.3 / 2, 4 / 0.3 / 2])  # both dropped, one kept, both kept
    assert all(torch.isclose(allowed, value).any() for value in torch.unique(first))
    assert abs(first.mean().item() - 2.0) < 0.05  # the expected merge is the linear one: (1 + 3) / 2
    assert tensor_seed(7, "a") != tensor_seed(7, "b")  # same shape, different tensor: a different mask
    full = dare_merge(base, models, (1.0, 1.0), density=1.0, scaling=1.0, seed=0)
    assert torch.allclose(full, linear_merge(models, (1.0, 1.0)))  # nothing dropped: the linear merge


def test_ties_trims_before_the_election():
    base = torch.zeros(4)
    # trimmed to 2 of 4: (0, -2, 3, 0) and (2, 0, -1.5, 0); elected (+, -, +, 0)
    merged = ties_merge(base, [t(1, -2, 3, 0.5), t(2, 1, -1.5, 0.1)], (1.0, 1.0), density=0.5, scaling=1.0)
    assert torch.allclose(merged, t(2, -2, 3, 0))


# ----- the operator on a pico lab --------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("merge")
    home = Home.resolve(root)
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    make = get_operator("adapter-finetune")
    code = make(registry, home, pico.parent.id, AdapterFinetuneRecipe(domain="code", **TINY), OPTIONS).child
    medical = make(registry, home, pico.parent.id, AdapterFinetuneRecipe(domain="medical", **TINY), OPTIONS).child
    small = get_operator("cmg")(registry, home, pico.parent.id,
                                CMGRecipe(domain="code", ratio=0.5, profile_tokens=256, **TINY), OPTIONS).child
    texts = synthetic_documents("medical", 20, seed=7)  # another corpus: another BPE vocabulary
    other_dir = build_pico_parent(root / "other-parent", texts=texts, seed=1)
    other = import_parent(registry, other_dir, cache_dir=root, name="pico-other")
    return home, registry, pico.parent, {"code": code, "medical": medical, "small": small, "other": other}


def _state(artifact):
    model, _ = load_model(artifact.path)
    return model.state_dict()


def test_merging_a_model_with_itself_gives_its_weights(lab):
    home, registry, parent, models = lab
    merge = get_operator("merge")
    for method in ("linear", "ties"):
        recipe = MergeRecipe(models=(models["code"].id, models["code"].id), method=method, density=1.0)
        merged, source = _state(merge(registry, home, parent.id, recipe, OPTIONS).child), _state(models["code"])
        assert merged.keys() == source.keys()
        assert all(torch.allclose(merged[k], source[k], atol=1e-7) for k in source), method


def test_the_merged_model_loads_generates_and_records_its_inputs(lab):
    home, registry, parent, models = lab
    recipe = MergeRecipe(models=(models["code"].id, models["medical"].id), method="ties")
    outcome = get_operator("merge")(registry, home, parent.id, recipe, OPTIONS)
    child = outcome.child
    assert child.manifest.kind == "merged" and child.manifest.parents == (models["code"].id, models["medical"].id)
    assert child.manifest.recipe["domains"] == ["code", "medical"] and child.manifest.recipe["domain"] == "code+medical"
    assert child.manifest.recipe["base"] == parent.id and child.manifest.recipe["method"] == "ties"
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(child.path)
    tokenizer = AutoTokenizer.from_pretrained(child.path)
    ids = torch.tensor([tokenizer("def alpha(beta):")["input_ids"]])  # (1, S)
    out = model.generate(ids, max_new_tokens=5, min_new_tokens=5, do_sample=False)
    assert out.shape == (1, ids.shape[1] + 5)
    merged, code = _state(child), _state(models["code"])
    assert any(not torch.equal(merged[k], code[k]) for k in code)  # it is not just one of its inputs
    again = get_operator("merge")(registry, home, parent.id, recipe, OPTIONS)
    assert again.reused and again.child.id == child.id
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


def test_incompatible_models_are_refused_naming_each_problem_and_nothing_is_registered(lab):
    home, registry, parent, models = lab
    before = [a.id for a in registry.find()]
    problems = merge_problems(registry, [models["small"].id, models["medical"].id], parent.id)
    assert any("num_hidden_layers" in p for p in problems)  # a CMG child at ratio 0.5 has fewer layers
    assert any("tensor names differ" in p for p in problems)
    with pytest.raises(IncompatibleMerge) as refused:
        get_operator("merge")(registry, home, parent.id,
                              MergeRecipe(models=(models["small"].id, models["medical"].id)), OPTIONS)
    assert refused.value.problems == problems
    foreign = merge_problems(registry, [models["code"].id, models["other"].id], parent.id)
    assert any("tokenizer differs" in p and models["other"].id[:12] in p for p in foreign)
    assert any("lineage" in p and models["other"].id[:12] in p for p in foreign)
    assert not any(models["code"].id[:12] in p for p in foreign)  # the compatible one is not blamed
    with pytest.raises(IncompatibleMerge, match="tokenizer"):
        get_operator("merge")(registry, home, parent.id,
                              MergeRecipe(models=(models["code"].id, models["other"].id)), OPTIONS)
    assert merge_problems(registry, [models["code"].id, models["medical"].id], parent.id) == []
    assert [a.id for a in registry.find()] == before


def test_mixed_pools_give_every_row_its_own_teachers_logits():
    class Constant(torch.nn.Module):
        def __init__(self, value):
            super().__init__()
            self.value = value

        def forward(self, input_ids):
            return type("Out", (), {"logits": torch.full((*input_ids.shape, 3), self.value)})()

    first, second = torch.arange(8).view(4, 2), 100 + torch.arange(6).view(3, 2)  # (4, 2), (3, 2)
    pool = MixedPools([LiveTeacher(first, Constant(1.0)), LiveTeacher(second, Constant(2.0))])
    batch = pool.batch(torch.tensor([5, 0, 6, 3]))  # rows: second[1], first[0], second[2], first[3]
    assert len(pool) == 7
    assert batch["input_ids"].tolist() == [[102, 103], [0, 1], [104, 105], [6, 7]]
    assert batch["teacher_logits"][:, 0, 0].tolist() == [2.0, 1.0, 2.0, 1.0]


def test_the_distillation_fallback_trains_one_child_from_both_and_its_loss_falls(lab):
    home, registry, parent, models = lab
    before = {a.id for a in registry.find()}
    recipe = MergeDistillRecipe(models=(models["small"].id, models["medical"].id), ratio=0.5,
                                **{**TINY, "steps": 60, "batch_size": 4, "lr": 5e-3})
    outcome = get_operator("merge-distill")(registry, home, parent.id, recipe, OPTIONS)
    child = outcome.child
    assert child.manifest.kind == "merged" and child.manifest.operator == "merge-distill"
    assert child.manifest.parents == (models["small"].id, models["medical"].id)
    assert child.manifest.recipe["teacher_of"] == {"code": models["small"].id, "medical": models["medical"].id}
    domain = [e["loss"] for e in outcome.result.curve if e["stream"] == "domain"]
    kd = [e["kd"] for e in outcome.result.curve if e["stream"] == "domain"]
    assert sum(domain[-10:]) / 10 < 0.95 * sum(domain[:5]) / 5, (domain, kd)
    assert {a.id for a in registry.find()} - before == {child.id}  # live teachers: no caches registered
    model, _ = load_model(child.path)
    assert model.config.num_hidden_layers < 4  # a student at ratio 0.5, not a copy of the base
    with pytest.raises(IncompatibleMerge, match="tokenizer"):
        get_operator("merge-distill")(registry, home, parent.id,
                                      MergeDistillRecipe(models=(models["code"].id, models["other"].id), **TINY),
                                      OPTIONS)


def test_a_topk_distillation_caches_each_specialists_view_of_its_own_domain(lab):
    home, registry, parent, models = lab
    recipe = MergeDistillRecipe(models=(models["small"].id, models["medical"].id), teacher="topk", **TINY)
    child = get_operator("merge-distill")(registry, home, parent.id, recipe, OPTIONS).child
    caches = [registry.get(ref) for ref in child.manifest.recipe["inputs"]["caches"]]
    assert {(c.manifest.parents[0], c.manifest.name) for c in caches} == {
        (models["small"].id, "code/train/teacher-top32"), (models["medical"].id, "medical/train/teacher-top32"),
        (parent.id, "general/train/teacher-top32")}
