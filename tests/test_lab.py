"""`breedlab lab` end to end on a pico lab: suites, three candidates, measured fitness, packets."""

from __future__ import annotations

import json

import pytest
import torch
from rich.console import Console

from breedlab.evaluation.packets import load_packet
from breedlab.governance.identities import adopt_home
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.lab.run import LabConfig, run_lab
from breedlab.lab.setup import LAB_ACTOR, crown_parent
from breedlab.registry import Registry, verify
from breedlab.registry.keys import available_keys

PICO = LabConfig(niche="code", pico=True, ratio=0.5, distill_tokens=2048, finetune_tokens=1024, lm_cases=8,
                 cloze_cases=12, retention_cases=6, passage_tokens=32)


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("lab-home"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    crown_parent(registry, pico.parent, actor=LAB_ACTOR)
    keys = tmp_path_factory.mktemp("keys")
    adopt_home(registry, keys)  # signed from here: the lab breeds as the breeder, measures as the evaluator
    registry.signers = available_keys(keys)
    console = Console(record=True, width=200)
    return registry, run_lab(registry, home, PICO, console), console


def test_the_lab_makes_four_candidates_and_stacks_fp16_on_the_cmg_child(lab_run):
    _, result, _ = lab_run
    operators = [c.manifest.operator for c in result.candidates]
    assert operators == ["adapter-finetune", "cmg", "quantize", "quantize"]
    cmg, stacked = result.candidates[1], result.candidates[2]
    assert stacked.manifest.parents == (cmg.id,)  # the lineage shows both steps: parent -> cmg -> fp16
    assert stacked.manifest.recipe["scheme"] == "fp16" and stacked.manifest.name.endswith("-fp16")
    others = [c for c in result.candidates if c is not stacked]
    assert all(c.manifest.parents == (result.champion.id,) for c in others)
    assert cmg.manifest.recipe["strategy"] == "mixed" and cmg.manifest.recipe["trainable"] == "full"


def test_every_candidate_has_a_full_fitness_vector_and_an_evidence_packet(lab_run):
    registry, result, _ = lab_run
    for candidate in result.candidates:
        fitness = result.fitness[candidate.id]
        assert fitness.utility is not None and fitness.domain_ppl and fitness.general_ppl
        assert fitness.latency_token_ms_p95 >= fitness.latency_token_ms_p50 > 0
        assert fitness.peak_rss_bytes > 0 and fitness.network_attempts == 0 and fitness.data_local
        assert fitness.canary_reproduced is False
        if candidate.manifest.operator == "quantize":  # breedlab's own fp16 weights: llama.cpp is not asked
            assert fitness.engine is None and "int8/fp16 weight files" in fitness.unmeasured["engine"]
        else:  # checked on llama.cpp Q8_0 against hf, its speed beside hf's, the check registered
            assert fitness.engine == "llamacpp/q8_0" and fitness.engine_token_ms > 0 and fitness.engine_hf_token_ms > 0
            assert abs(fitness.engine_nll_delta) < 0.05 and fitness.engine_passed is not None
            assert registry.get(fitness.engine_check).manifest.parents == (candidate.id,)
        packet = load_packet(registry, result.evidence[candidate.id])
        assert packet["candidate"] == candidate.id and packet["decision"]["outcome"] in ("promote", "reject", "no-op")
        assert packet["created_utc"].endswith("Z") and packet["gates"]


def test_the_release_packet_names_the_rollback_target_and_the_population(lab_run):
    registry, result, console = lab_run
    release = load_packet(registry, result.release.id)
    assert release["rollback_target"] == result.champion.id
    assert set(release["evidence"]) == set(result.evidence.values())
    assert (result.release.path / "packet.md").read_text().strip()
    text = console.export_text()
    assert "fitness vectors" in text and "release packet" in text and "no-op" in text


def test_the_lab_never_promotes_and_leaves_a_verifiable_registry(lab_run):
    registry, result, _ = lab_run
    assert all(registry.get(c.id).state == "candidate" for c in result.candidates)
    assert [f for f in verify(registry.root) if f.level == "problem"] == []  # every signature checked
    assert json.dumps(result.fitness[result.champion.id].to_dict())
    made = {e.artifact: e.actor for e in registry.events() if e.type == "registered"}
    assert {made[c.id] for c in result.candidates} == {"breeder"}
    assert {made[p.id] for p in registry.find(kind="packet")} == {"evaluator"}


def test_a_lab_crowns_the_parent_it_imports_as_its_own_identity(tmp_path):
    """``breedlab lab`` on a home without a champion imports the parent and crowns it as the lab, not the demo."""
    from breedlab.lab.setup import ensure_parent_and_data

    home = Home.resolve(tmp_path)
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir, domains=("code", "general"), docs=12)
    console = Console(record=True, width=200)
    parent = ensure_parent_and_data(console, home, registry, actor=LAB_ACTOR, domains=["code", "general"],
                                    parent_source=str(pico.parent.path))
    assert parent.state == "champion"
    crowned = [e for e in registry.events(parent.id) if e.type == "promoted"]
    assert [e.actor for e in crowned] == [LAB_ACTOR] == ["breedlab-lab"]
    again = ensure_parent_and_data(console, home, registry, actor="someone-else", domains=["code", "general"])
    assert again.id == parent.id and len([e for e in registry.events(parent.id) if e.type == "promoted"]) == 1


def test_in_a_signed_home_an_approver_crowns_the_imported_parent(tmp_path):
    from breedlab.lab.setup import ensure_parent_and_data, lab_identities

    home = Home.resolve(tmp_path / "home")
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir, domains=("code", "general"), docs=12)
    adopt_home(registry, tmp_path / "keys")
    crowner = lab_identities(registry, home, tmp_path / "keys")
    assert crowner == "approver" and registry.actor == "breeder"
    parent = ensure_parent_and_data(Console(record=True), home, registry, actor=crowner,
                                    domains=["code", "general"], parent_source=str(pico.parent.path))
    crowned = [e for e in registry.events(parent.id) if e.type == "promoted"]
    assert parent.state == "champion" and [e.actor for e in crowned] == ["approver"] and crowned[0].sig
    assert [e.actor for e in registry.events(parent.id) if e.type == "registered"] == ["breeder"]
    assert [f for f in verify(registry.root) if f.level == "problem"] == []
