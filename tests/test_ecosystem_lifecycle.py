"""Spawn, rollout, prune and revalidation on a pico ecosystem: real models, real events, real states.

One module-scoped ecosystem (the quick demo's profile): a real spawn breeds and
evaluates a code child that the approver shadows; a damaged copy of the parent
plays the child that live evidence must catch. The tests run in file order and
follow one population through its life.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
import torch
from rich.console import Console

from breedlab.demo.profiles import load_profile
from breedlab.demo.setup import build_parts, parent_and_data
from breedlab.ecosystem.detector import SpawnRequest
from breedlab.ecosystem.lifecycle import ChildWatch
from breedlab.ecosystem.rollout import Rollout
from breedlab.ecosystem.runner import Ecosystem
from breedlab.ecosystem.spawn import reevaluate, run_spawn
from breedlab.ecosystem.steward import Authority, close_window
from breedlab.ecosystem.trace import Phase, build_trace, domain_pools
from breedlab.evaluation.measure import load_candidate
from breedlab.governance.config import load_governance
from breedlab.home import Home
from breedlab.models.io import save_model
from breedlab.registry import Registry

QUIET = Console(file=io.StringIO(), width=160)


class Lab:
    """The shared pico ecosystem and a way to replay windows of traffic through it."""

    def __init__(self, home: Home):
        torch.set_num_threads(1)
        self.home, self.registry = home, Registry.open(home.registry_dir)
        self.profile = load_profile("quick")
        self.parent = parent_and_data(QUIET, home, self.registry, self.profile)
        self.parts = build_parts(home, self.registry, self.profile, self.parent, QUIET)
        self.governance = load_governance(home.root)
        self.lab_config = self.profile.lab_config("code")
        self.pools = domain_pools(self.registry, list(self.profile.domains), seed=0)
        self.authority = Authority(self.governance, "approver", self._no_spawn, self._reevaluate)

    def _no_spawn(self, request):
        raise AssertionError(f"no spawn expected here, got one for {request.domain}")

    def _reevaluate(self, niche, child_id):
        return reevaluate(self.registry, self.home, child_id, self.parent.id,
                          replace(self.lab_config, niche=niche), console=QUIET)

    def replay(self, eco: Ecosystem, mix: dict[str, float], windows: int = 1, seed: int = 0) -> list[dict]:
        trace = build_trace(self.pools, [Phase("test", windows, mix)], queries_per_window=30, seed=seed)
        records = []
        for index, window in enumerate(trace):
            for query in window:
                eco.serve(query)
            records.append(close_window(eco, self.authority, index=index, phase="test", now=1e9 + index))
        return records

    def damaged_child(self, name: str, scale: float, domain: str) -> str:
        """The parent's weights plus Gaussian noise, registered as a child: a model live traffic must catch."""
        model, tokenizer = load_candidate(self.parent)
        generator = torch.Generator().manual_seed(7)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
        folder = save_model(model, tokenizer, self.home.cache_dir / name)
        files = {p.name: p for p in folder.iterdir() if p.is_file()}
        child = self.registry.register("child", name, files, operator="test-damage", recipe={"domain": domain},
                                       parents=[self.parent.id], actor="breeder")
        return child.id


class _NoChild:
    child = None


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    return Lab(Home.resolve(tmp_path_factory.mktemp("eco-home")))


@pytest.fixture(scope="module")
def spawned(lab):
    request = SpawnRequest("code", 0.5, {"test": True})
    return run_spawn(lab.registry, lab.home, request, lab.lab_config, lab.governance, lab.parent.id,
                     approver="approver", console=QUIET)


def test_a_spawn_breeds_evaluates_and_only_the_approver_shadows_the_child(lab, spawned):
    child = spawned.child
    assert child is not None and child.state == "shadow" and child.manifest.operator == "cmg"
    promoted = [e for e in lab.registry.events(child.id) if e.type == "promoted"]
    assert len(promoted) == 1 and promoted[0].actor == "approver" and promoted[0].data["evidence"]
    assert next(e for e in lab.registry.events(child.id) if e.type == "registered").actor == "breeder"


def test_a_canary_worse_on_live_traffic_is_rolled_back_automatically(lab):
    bad = lab.damaged_child("code-damaged", scale=0.5, domain="code")
    lab.registry.transition(bad, "canary", event_type="promoted", actor="approver", reason="test: canary it",
                            data={"niche": "code"})
    eco = Ecosystem(lab.parts)
    eco.rollouts["code"] = Rollout(bad, "code", stage="canary")
    lab.replay(eco, {"code": 1.0})
    assert lab.registry.get(bad).state == "rejected" and "code" not in eco.rollouts
    event = lab.registry.events(bad)[-1]
    assert event.type == "rolled-back" and event.actor == "ecosystem"
    assert "max_live_regression" in event.reason and event.data["mean_delta"] > 0.05


def test_shadow_then_canary_then_champion_on_paired_live_evidence(lab, spawned):
    eco = Ecosystem(lab.parts)
    eco.rollouts["code"] = Rollout(spawned.child.id, "code")
    for seed in range(1, 5):  # one window of shadow, then canary windows until enough canary queries
        lab.replay(eco, {"code": 0.6, "general": 0.4}, seed=seed)
        if "code" not in eco.rollouts:
            break
    child = lab.registry.get(spawned.child.id)
    assert child.state == "champion" and eco.routes["code"] == child.id
    stages = [e.data["to"] for e in lab.registry.events(child.id) if e.type == "promoted"]
    assert stages == ["shadow", "canary", "champion"]
    assert "shadow on" in lab.registry.events(child.id)[-2].reason
    assert "code" in eco.watches  # crowned children are watched from now on


def test_a_degraded_champion_is_flagged_re_evaluated_and_kept_when_the_suites_still_pass(lab, spawned):
    eco = Ecosystem(lab.parts)
    # A baseline recorded as far better than the child does now: its live quality "fell".
    eco.watches["code"] = ChildWatch(spawned.child.id, "code", baseline_delta=-5.0)
    lab.replay(eco, {"code": 1.0}, windows=2, seed=12)
    types = [e.type for e in lab.registry.events(spawned.child.id)]
    assert types[-2:] == ["flagged", "revalidated"]
    assert lab.registry.get(spawned.child.id).state == "champion"
    assert lab.registry.events(spawned.child.id)[-1].data["outcome"] == "promote"


def test_a_champion_that_fails_re_evaluation_is_rolled_back_to_the_parent(lab):
    bad = lab.damaged_child("medical-damaged", scale=0.3, domain="medical")
    for stage in ("shadow", "champion"):
        lab.registry.transition(bad, stage, event_type="promoted", actor="approver", reason="test: crown it",
                                data={"niche": "medical"})
    eco = Ecosystem(lab.parts)
    eco.watches["medical"] = ChildWatch(bad, "medical", baseline_delta=0.0)
    requests = []
    lab.authority.spawn = lambda request: requests.append(request) or _NoChild()
    try:
        lab.replay(eco, {"medical": 1.0}, windows=2, seed=13)
    finally:
        lab.authority.spawn = lab._no_spawn
    assert [r.domain for r in requests] == ["medical"]  # demand without a specialist: the detector asks again
    events = lab.registry.events(bad)
    assert [e.type for e in events[-2:]] == ["flagged", "rolled-back"]
    assert lab.registry.get(bad).state == "retired" and events[-1].data["outcome"] == "reject"
    eco.refresh_routes()
    assert "medical" not in eco.routes  # medical traffic is the parent's again


def test_an_expired_lease_opens_a_review_and_a_child_the_suites_still_pass_is_renewed(lab, spawned):
    eco = Ecosystem(lab.parts)
    eco.watches["code"] = ChildWatch(spawned.child.id, "code", baseline_delta=0.0, lease_until=0.0)
    lab.replay(eco, {"code": 1.0}, windows=1, seed=15)
    events = lab.registry.events(spawned.child.id)
    assert [e.type for e in events[-2:]] == ["lease-review", "lease-renewed"]
    assert events[-2].actor == events[-1].actor == "ecosystem" and events[-1].data["outcome"] == "promote"
    assert eco.watches["code"].lease_until == 1e9 + lab.governance.lease_days * 86_400.0
    assert lab.registry.get(spawned.child.id).state == "champion"


def test_a_lease_review_the_suites_fail_retires_the_champion(lab):
    bad = lab.damaged_child("legal-damaged", scale=0.3, domain="code")
    for stage in ("shadow", "champion"):
        lab.registry.transition(bad, stage, event_type="promoted", actor="approver", reason="test: crown it",
                                data={"niche": "code-lease"})
    eco = Ecosystem(lab.parts)
    # a baseline so lenient that revalidation never flags it: only the lease review catches it
    eco.watches["code"] = ChildWatch(bad, "code", baseline_delta=100.0, lease_until=0.0)
    lab.replay(eco, {"general": 1.0}, windows=1, seed=16)
    events = lab.registry.events(bad)
    assert [e.type for e in events[-2:]] == ["lease-review", "retired"]
    assert lab.registry.get(bad).state == "retired" and events[-1].data["outcome"] == "reject"
    assert "code" not in eco.watches


def test_an_idle_champion_is_pruned_and_its_niche_returns_to_the_parent(lab, spawned):
    eco = Ecosystem(lab.parts)
    eco.watches["code"] = ChildWatch(spawned.child.id, "code", baseline_delta=0.0)
    records = lab.replay(eco, {"general": 1.0}, windows=2, seed=14)
    child = lab.registry.get(spawned.child.id)
    assert child.state == "retired" and "code" not in eco.routes
    event = lab.registry.events(child.id)[-1]
    assert event.type == "retired" and event.data["action"] == "prune" and event.data["shares"] == [0.0, 0.0]
    assert all(set(r["served"]) == {"parent"} for r in records)


def test_the_population_budget_defers_a_spawn(lab):
    from breedlab.ecosystem.spawn import budget_problem

    tight = replace(lab.governance, max_active_children=1)
    lab.registry.transition(lab.damaged_child("legal-damaged", 0.1, domain="legal"), "shadow", event_type="promoted",
                            actor="approver", reason="test", data={"niche": "legal"})
    assert "budget 1" in budget_problem(lab.registry, tight, "medical")
    result = run_spawn(lab.registry, lab.home, SpawnRequest("medical", 0.9, {}), lab.lab_config, tight,
                       lab.parent.id, approver="approver", console=QUIET)
    assert result.child is None and lab.registry.events(lab.parent.id)[-1].type == "spawn-deferred"


def test_a_spawn_the_lab_already_judged_a_no_op_is_deferred_not_run_again(lab, spawned):
    """Same champion, recipe and data give the same verdict (breeds are deterministic and reused), so a
    detector that fires again after a no-op costs a log line, not another lab; a changed recipe runs."""
    from breedlab.ecosystem.spawn import lab_key

    config = replace(lab.lab_config, niche="medical")
    key = lab_key(lab.registry, config)
    assert key == lab_key(lab.registry, config)
    assert key != lab_key(lab.registry, replace(config, distill_tokens=config.distill_tokens * 2))
    cache = lab.home.cache_dir / "derived.json"
    cache.write_text("{\"note\": \"a teacher cache the lab made\"}")
    lab.registry.register("dataset", "medical/train/teacher-test", {"derived.json": cache}, operator="teacher-logits",
                          recipe={}, parents=[lab.parent.id], actor="breeder")
    assert lab_key(lab.registry, config) == key  # what the lab itself derives is not new data
    release = lab.registry.find(kind="packet")[0]
    lab.registry.record("spawn-no-op", lab.parent.id, actor="breeder", reason="test: the lab found nothing",
                        data={"domain": "medical", "release": release.id, "lab_key": key})
    models = len(lab.registry.find(kind="child"))
    result = run_spawn(lab.registry, lab.home, SpawnRequest("medical", 0.9, {}), lab.lab_config, lab.governance,
                       lab.parent.id, approver="approver", console=QUIET)
    event = lab.registry.events(lab.parent.id)[-1]
    assert result.child is None and event.type == "spawn-deferred" and event.data["lab_key"] == key
    assert "already judged" in event.reason and len(lab.registry.find(kind="child")) == models


def test_a_quantized_stack_serves_its_sources_niche_and_descendants_breed_from_the_source(lab, spawned):
    """The demo crashed here once: a crowned fp16 stack has the quantization's recipe (no domain), so the
    detector saw no specialist and spawned again, and the lab tried to breed from fp16 weights."""
    from breedlab.cmg.recipe import RunOptions
    from breedlab.ecosystem.detector import registered_specialist
    from breedlab.lab.steps import breed_candidates
    from breedlab.operators.quantize import QuantizeRecipe, quantize
    from breedlab.registry.lineage import full_precision

    source = spawned.child
    stack = quantize(lab.registry, lab.home, source.id, QuantizeRecipe(scheme="fp16"), RunOptions(progress=False)).child
    assert full_precision(lab.registry, stack).id == source.id and full_precision(lab.registry, source).id == source.id
    if lab.registry.get(source.id).state in ("shadow", "canary", "champion"):
        lab.registry.transition(source.id, "rejected", event_type="rejected", actor="lifecycle", reason="test",
                                data={"niche": "code"})
    assert not registered_specialist(lab.registry)("code")
    lab.registry.transition(stack.id, "canary", event_type="promoted", actor="approver", reason="test",
                            data={"niche": "code"})
    assert registered_specialist(lab.registry)("code")  # the stack, read through its source
    config = replace(lab.lab_config, niche="code", candidates=("cmg",))
    child, = breed_candidates(lab.registry, lab.home, lab.registry.get(stack.id), config, "breeder", QUIET)
    assert list(child.manifest.parents) == [source.id]
