"""Router policies as candidates, on the quick demo's home: evidence, shadow, promotion, the live route."""

from __future__ import annotations

import sqlite3

import pytest

from breedlab.ecosystem.labels import LabelStore
from breedlab.ecosystem.router.candidates import champion_policy, promote_policy, router_variant
from breedlab.ecosystem.router.data import GROUPS
from breedlab.ecosystem.router.evidence import ROUTER_NICHE
from breedlab.evaluation.packets import load_packet, write_routing_packet
from breedlab.governance.promotion import EvidenceError, passing_evidence
from breedlab.registry import Registry, verify
from breedlab.server.config import load_server_config
from breedlab.server.state import ServerState
from tests.server_fixture import quick_home

CODE_QUESTIONS = ["How do I reverse a list in Python?", "def add(a, b): return a + b",
                  "What does the return statement do in a function?"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return quick_home(tmp_path_factory)


def test_the_demo_routes_by_a_champion_crowned_on_routing_evidence(home):
    registry = Registry.open(home.registry_dir)
    champion = champion_policy(registry)
    assert champion is not None and champion.state == "champion"
    body = load_packet(registry, passing_evidence(registry, champion.id, ROUTER_NICHE))
    policies = {a.id for a in registry.find(kind="router-policy")}
    assert body["type"] == "routing" and body["candidate"] == champion.id
    assert body["champion"] in {"parent-only", *policies}  # the first champion was judged against the parent
    assert set(GROUPS) | {"overall"} <= set(body["reports"]["candidate"])
    assert [g["name"] for g in body["gates"]] == ["served_queries", "served_snippets", "ood_kept", "p50_ms"]
    assert registry.get(body["suite"]).manifest.kind == "eval-suite"


def _passing_packet(registry, candidate, champion):
    """Evidence for the promotion path under test (the suite measurement is tested on the demo's own)."""
    suite = registry.find(kind="eval-suite", name="router/routing-suite")[0].id
    gate = {"name": "served_queries", "passed": True, "value": 1.0, "limit": 0.0, "reason": "test"}
    return write_routing_packet(registry, candidate=candidate.id, champion=champion.id, suite=suite, reports={},
                                gates=[gate], decision={"outcome": "promote", "reasons": ["test"]})


def test_a_candidate_routes_nothing_until_promoted_and_a_shadow_is_recorded_never_used(home):
    state = ServerState.load(home, load_server_config())
    try:
        registry, champion_id = state.registry, state.policy_id
        champion = registry.get(champion_id)
        candidate = router_variant(registry, champion, "threshold", None, target=0.5)
        with pytest.raises(EvidenceError):  # no routing evidence yet: the approver cannot promote it
            promote_policy(registry, state.governance, candidate, "shadow", approver="approver", reason="test")
        state.refresh_if_changed()
        assert state.policy_id == champion_id and state.policy_shadow is None  # a candidate never routes

        _passing_packet(registry, candidate, champion)
        promote_policy(registry, state.governance, candidate, "shadow", approver="approver", reason="test")
        state.refresh_if_changed()
        assert state.policy_id == champion_id and state.policy_shadow.policy_id == candidate.id
        champion_policy_obj = state.policy
        for text in CODE_QUESTIONS:
            decision = state.decide("auto", text)
            expected = champion_policy_obj.route([text], state.routes)[0]
            assert decision.confidence == pytest.approx(expected.confidence)  # the champion decided
        rows = sqlite3.connect(home.logs_dir / "router-shadow.sqlite").execute(
            "SELECT policy, shadow_domain FROM shadow_routes").fetchall()
        assert len(rows) == len(CODE_QUESTIONS) and {r[0] for r in rows} == {candidate.id}

        promote_policy(registry, state.governance, candidate, "champion", approver="approver", reason="test")
        state.refresh_if_changed()
        assert state.policy_id == candidate.id and registry.get(champion_id).state == "retired"
        assert state.policy_shadow is None and state.policy.threshold == registry.get(candidate.id).manifest.recipe["threshold"]
        assert [f for f in verify(registry.root) if f.level == "problem"] == []  # an unsigned home's note is no problem
    finally:
        state.close()


def test_a_refit_learns_only_labels_with_a_trusted_provenance(home, tmp_path):
    registry = Registry.open(home.registry_dir)
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add("how do i reverse a list in python", "code", "monitor", keep_text=True)
    store.add("what causes a swollen kidney", "medical", "feedback", keep_text=True)
    store.add("a private query", "code", "monitor", keep_text=False)
    labelled = store.training_labels(("monitor",))
    candidate = router_variant(registry, champion_policy(registry), "refit", None, labelled=labelled)
    recipe = candidate.manifest.recipe
    assert recipe["variant"] == "refit" and recipe["labels"] == {"code": 1}
    assert candidate.manifest.operator == "router-variant" and candidate.state == "candidate"
    assert candidate.manifest.parents == (champion_policy(registry).id,)


def test_a_router_recipe_rejected_before_is_not_fitted_or_rejected_again(tmp_path_factory):
    """A server restarted in a home whose first fitted router failed its evidence: the same recipe on the
    same data was judged already, so the parent serves (it used to re-reject the same id and not start)."""
    from breedlab.ecosystem.router.candidates import FitRecipe, ensure_champion
    from breedlab.governance.config import load_governance

    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    champion = champion_policy(registry)
    registry.transition(champion.id, "retired", event_type="retired", actor="approver", reason="test: no champion")
    rejected = next(a for a in registry.find(kind="router-policy", state="rejected"))
    r = rejected.manifest.recipe
    recipe = FitRecipe(r["policy"], tuple(r["niches"]), tuple(r["out_of_domain"]), seed=r["seed"],
                       query_share=r["query_share"], target=r["target"], train_snippets=r["train_snippets"],
                       suite_questions=r["suite_questions"], params=dict(r["fit_params"]))
    events = len(registry.events())
    policy, artifact, _ = ensure_champion(registry, load_governance(home.root), recipe, None, approver="approver")
    assert artifact is None and policy.threshold > 1  # routes nothing: every query stays on the parent
    assert len(registry.events()) == events  # nothing fitted, registered or rejected again
