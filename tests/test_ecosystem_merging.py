"""The merge lifecycle on a pico ecosystem: merged, refused (incompatible or not better), skipped; events and states."""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
import torch
from rich.console import Console

from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.ecosystem.merge.review import MergeConfig, consider_merge, merge_rule
from breedlab.evaluation.decision import Decision
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import EvaluationConfig, GateResult
from breedlab.evaluation.latency import LatencySettings
from breedlab.evaluation.packets import load_packet, write_evidence_packet
from breedlab.evaluation.suites import build_suite
from breedlab.governance.config import GovernanceConfig
from breedlab.governance.niche import current_champion
from breedlab.governance.promotion import promote
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.lab.setup import LAB_ACTOR, crown_parent
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe
from breedlab.operators.table import get_operator
from breedlab.registry import Registry, verify

TINY = {"steps": 6, "batch_size": 2, "seq_len": 32, "lora_rank": 4, "lora_alpha": 8, "pool_tokens": 512,
        "rehearsal_pool_tokens": 256, "warmup_steps": 2}
GOVERNANCE = GovernanceConfig(breeder="breeder", approvers=("approver",), max_children_per_niche=2,
                              max_total_weight_bytes=10**9)
# A pico adapter's merge loses a few thousandths of a nat per token, consistently: tolerated here.
CONFIG = MergeConfig(min_centroid_similarity=0.8, min_cross_ratio=0.5, max_nll_loss=0.05, max_utility_loss=0.1)
FAST = {"isolate": False, "latency": LatencySettings(new_tokens=4, repeats=1)}  # run options, not the rule
STATE_EVENTS = ("promoted", "retired", "rejected", "demoted", "rolled-back")


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A pico lab with code and medical adapter specialists, a small CMG code child and frozen suites."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("eco-template")
    home = Home.resolve(root)
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    crown_parent(registry, pico.parent, actor=LAB_ACTOR)
    options = RunOptions(progress=False, threads=1, checkpoint_every=100, actor="breeder")
    adapter, cmg = get_operator("adapter-finetune"), get_operator("cmg")
    models = {domain: adapter(registry, home, pico.parent.id, AdapterFinetuneRecipe(domain=domain, **TINY),
                              options).child.id for domain in ("code", "medical")}
    models["small"] = cmg(registry, home, pico.parent.id,
                          CMGRecipe(domain="code", ratio=0.5, profile_tokens=256, **TINY), options).child.id
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(pico.parent.path)
    sizes = {"lm": 8, "cloze": 12, "retention": 6}
    suites = {d: {k: build_suite(registry, k, "general" if k == "retention" else d, tokenizer=tokenizer, cases=n,
                                 tokens=32).id for k, n in sizes.items()} for d in ("code", "medical")}
    return root, pico.parent.id, models, suites


@pytest.fixture()
def eco(template, tmp_path):
    """A private copy of the template home (so each test starts from the same states)."""
    root, parent, models, suites = template
    shutil.copytree(root, tmp_path / "home", symlinks=True)
    home = Home.resolve(tmp_path / "home")
    return home, Registry.open(home.registry_dir), parent, models, suites


def crown(registry, parent, suites, child_id, niche):
    """Promote a fixture specialist the way test_governance does: an evidence packet, then the approver."""
    champion = FitnessVector(candidate=parent, suites={"cloze": suites[niche]["cloze"]})
    challenger = FitnessVector(candidate=child_id, suites={"cloze": suites[niche]["cloze"]})
    write_evidence_packet(registry, champion, challenger, [GateResult("fixture", True, 1, 1, "fixture")],
                          Decision("promote", ["fixture specialist"]), niche=niche)
    promote(registry, GOVERNANCE, child_id, "champion", niche=niche, approver="approver", reason="fixture")


def run(eco, a, b, *, similarity=0.95, config=CONFIG, **extra):
    home, registry, parent, models, suites = eco
    for child, niche in ((a, "code"), (b, "medical")):
        if registry.get(child).state != "champion":
            crown(registry, parent, suites, child, niche)
    before = len(registry.events())
    outcome = consider_merge(registry, home, a, b, centroid_similarity=similarity, config=config,
                             governance=GOVERNANCE, approver="approver", breeder="breeder", suites=suites,
                             **{**FAST, **extra})
    return outcome, registry.events()[before:]


def test_converged_compatible_specialists_merge_and_both_retire(eco):
    _, registry, parent, models, _ = eco
    console = Console(record=True, width=200)
    outcome, events = run(eco, models["code"], models["medical"], console=console)
    merged = outcome.merged
    assert outcome.outcome == "merged" and outcome.method == "ties" and merged.state == "champion"
    assert merged.manifest.parents == (models["code"], models["medical"])
    for domain, niche in (("code", "code"), ("medical", "medical")):
        specialist = registry.get(models[domain])
        retired = [e for e in events if e.type == "retired" and e.artifact == specialist.id]
        assert specialist.state == "retired" and len(retired) == 1
        assert retired[0].data["successor"] == merged.id and retired[0].data["niche"] == niche
        assert retired[0].reason == f"merged into {merged.id[:12]}" and retired[0].actor == "approver"
        packet = load_packet(registry, outcome.evidence[niche])
        assert packet["decision"]["outcome"] == "promote" and packet["candidate"] == merged.id
        assert "not decide()'s" in packet["decision"]["reasons"][0] and "cost" in packet["statistics"]
    assert current_champion(registry, "code").id == current_champion(registry, "medical").id == merged.id
    served = [e for e in events if e.type == "merged"]
    assert served[0].data["niches"] == ["code", "medical"] and served[0].data["replaces"]["medical"] == models["medical"]
    assert all(e.reason.strip() for e in events) and registry.get(parent).state == "champion"
    assert "merged into" in console.export_text()
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


def test_incompatible_specialists_are_refused_when_distillation_is_off(eco):
    _, registry, _, models, _ = eco
    outcome, events = run(eco, models["small"], models["medical"], config=replace(CONFIG, allow_distill=False))
    assert outcome.outcome == "refused" and outcome.merged is None
    refused = [e for e in events if e.type == "merge-refused"]
    assert {e.artifact for e in refused} == {models["small"], models["medical"]}
    for event in refused:
        assert event.data["stage"] == "compatibility" and "num_hidden_layers" in event.reason
        assert any("allow_distill" in r for r in event.data["reasons"])
    assert not any(e.type in STATE_EVENTS for e in events)
    assert registry.get(models["small"]).state == registry.get(models["medical"]).state == "champion"
    assert registry.find(kind="merged") == []  # nothing was made


def test_incompatible_specialists_are_distilled_and_the_weak_child_is_refused(eco):
    _, registry, _, models, _ = eco
    outcome, events = run(eco, models["small"], models["medical"], config=replace(CONFIG, distill=dict(TINY)))
    assert outcome.method == "distill" and outcome.merged.manifest.operator == "merge-distill"
    # six steps of a half-size student do not match two specialists: the rule refuses, honestly
    assert outcome.outcome == "refused" and registry.get(outcome.merged.id).state == "rejected"
    assert registry.get(models["small"]).state == registry.get(models["medical"]).state == "champion"
    assert {e.type for e in events} >= {"merge-refused", "rejected"}
    packet = load_packet(registry, outcome.evidence["code"])
    assert packet["decision"]["outcome"] in ("no-op", "reject") and packet["candidate"] == outcome.merged.id


def test_domains_that_have_not_converged_are_skipped_and_nothing_changes(eco):
    _, registry, _, models, _ = eco
    outcome, events = run(eco, models["code"], models["medical"], similarity=0.31)
    assert outcome.outcome == "skipped" and [e.type for e in events] == ["merge-skipped", "merge-skipped"]
    assert "0.3100 < 0.8" in events[0].reason and events[0].data["partner"] == models["medical"]
    assert registry.find(kind="merged") == []
    outcome, events = run(eco, models["code"], models["medical"], config=replace(CONFIG, min_cross_ratio=5.0))
    assert outcome.outcome == "skipped" and "cross-evaluation" in events[-1].reason
    assert events[-1].data["statistics"]["cross_evaluation"]["pairs"]
    assert registry.get(models["code"]).state == registry.get(models["medical"]).state == "champion"


def test_a_merge_that_does_not_beat_keeping_both_is_refused(eco):
    _, registry, _, models, _ = eco
    damaged = replace(CONFIG, scaling=30.0)  # task vectors blown up 30x: a deliberately damaged TIES merge
    outcome, events = run(eco, models["code"], models["medical"], config=damaged)
    assert outcome.outcome == "refused" and outcome.merged is not None
    assert registry.get(outcome.merged.id).state == "rejected"
    assert registry.get(models["code"]).state == registry.get(models["medical"]).state == "champion"
    refused = [e for e in events if e.type == "merge-refused"]
    assert len(refused) == 2 and all(e.data["stage"] == "evaluation" for e in refused)
    assert any("NLL" in r and ": worse" in r for r in refused[0].data["reasons"])
    assert not any(e.type in ("retired", "promoted") for e in events)


def _vector(candidate, nll, correct, weight_bytes=100):
    return FitnessVector(candidate=candidate, domain_case_nll=nll, utility_cases=correct, weight_bytes=weight_bytes)


def test_the_merge_rule_wants_no_significant_loss_on_every_domain_and_a_lower_cost():
    evaluation = EvaluationConfig(bootstrap_resamples=2000)
    rule = replace(CONFIG, max_nll_loss=0.0, max_utility_loss=0.0)
    same = {d: _vector(d, [1.0, 2.0, 1.5, 1.2] * 5, [1, 0, 1, 1] * 5) for d in ("code", "medical")}
    worse = {**same, "medical": _vector("m", [2.0, 3.0, 2.5, 2.2] * 5, [0, 0, 0, 1] * 5)}
    gates = {d: [GateResult("g", True, 0, 0, "ok")] for d in same}
    costs = {"merged": 100, "a": 100, "b": 100}
    assert merge_rule(same, same, gates, costs, rule, evaluation).outcome == "promote"
    refused = merge_rule(same, worse, gates, costs, rule, evaluation)
    assert refused.outcome == "no-op" and any(r.startswith("medical: NLL") and ": worse" in r for r in refused.reasons)
    assert merge_rule(same, same, gates, {**costs, "merged": 200}, rule, evaluation).outcome == "no-op"
    failing = {**gates, "code": [GateResult("canary", False, True, False, "reproduced")]}
    assert merge_rule(same, same, failing, costs, rule, evaluation).outcome == "reject"


def test_the_ensemble_baseline_can_block_a_merge_its_specialists_would_allow():
    evaluation = EvaluationConfig(bootstrap_resamples=2000)
    rule = replace(CONFIG, max_nll_loss=0.0, max_utility_loss=0.0)
    same = {d: _vector(d, [1.0, 2.0, 1.5, 1.2] * 5, [1, 0, 1, 1] * 5) for d in ("code", "medical")}
    better = {d: _vector(f"ensemble {d}", [0.5, 1.4, 1.0, 0.7] * 5, [1, 0, 1, 1] * 5, 200) for d in same}
    gates = {d: [GateResult("g", True, 0, 0, "ok")] for d in same}
    costs = {"merged": 100, "a": 100, "b": 100}
    assert merge_rule(same, same, gates, costs, rule, evaluation, ensemble=same).outcome == "promote"
    blocked = merge_rule(same, same, gates, costs, rule, evaluation, ensemble=better)
    assert blocked.outcome == "no-op"
    assert any(r.startswith("code, against the ensemble") and ": worse" in r for r in blocked.reasons)
    assert blocked.statistics["ensemble code"]["nll"]["worse"]


def test_the_logit_ensemble_averages_its_members_and_is_scored_like_any_model(eco):
    from breedlab.evaluation.ensemble import LogitEnsemble, measure_ensemble
    from breedlab.evaluation.measure import load_candidate

    _, registry, _, models, suites = eco
    (a, tokenizer), (b, _) = (load_candidate(registry.get(models[d])) for d in ("code", "medical"))
    ids = tokenizer("def add(a, b): return a + b", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        mean = (a(input_ids=ids).logits + b(input_ids=ids).logits) / 2
        assert torch.allclose(LogitEnsemble([a, b])(input_ids=ids).logits, mean, atol=1e-5)
    fitness = measure_ensemble(registry, [models["code"], models["medical"]], suites["code"])
    assert len(fitness.domain_case_nll) > 0 and fitness.utility_cases and fitness.weight_bytes > 0


def test_merge_config_reads_a_mapping_and_refuses_unknown_keys():
    assert MergeConfig.from_mapping({"method": "linear", "distill": {"ratio": 0.3}}).distill == {"ratio": 0.3}
    assert MergeConfig.from_mapping(None) == MergeConfig()
    with pytest.raises(ValueError, match="unknown merge keys"):
        MergeConfig.from_mapping({"methd": "linear"})
    with pytest.raises(ValueError, match="unknown distill keys"):
        MergeConfig(distill={"models": ("a", "b")})
    with pytest.raises(ValueError, match="method"):
        MergeConfig(method="slerp")


def test_the_shipped_merge_section_loads_and_unknown_keys_are_refused(tmp_path):
    from breedlab.ecosystem.merge.review import load_merge_config

    assert load_merge_config() == MergeConfig()
    bad = tmp_path / "ecosystem.yaml"
    bad.write_text("merge:\n  method: ties\n  mehtod: linear\n")
    with pytest.raises(ValueError, match="mehtod"):
        load_merge_config(bad)
