"""Live traffic drives the detector: requests served by the server close monitor windows and fire it."""

from __future__ import annotations

import time
from dataclasses import replace

from openai import OpenAI
from server_fixture import quick_home, serve_app

from breedlab.ecosystem.setup import labelled_snippets
from breedlab.governance.config import load_governance
from breedlab.governance.promotion import promote
from breedlab.registry import Registry
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config


def test_code_traffic_through_the_server_makes_the_detector_request_a_code_child(tmp_path_factory):
    home = quick_home(tmp_path_factory)  # the quick demo pruned its code child: code has no specialist
    before = len(Registry.open(home.registry_dir).events())  # the demo's own spawns are not live traffic
    app = create_app(home, replace(load_server_config(), detector_window_queries=25))
    with serve_app(app) as base_url:
        state = app.state.breedlab
        client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        code = labelled_snippets(state.registry, ["code"], "test", seed=3, limit=25)["code"]
        for text in code:
            client.completions.create(model="auto", prompt=text, max_tokens=1)
        state.monitor.flush(timeout=60)
    live = [e for e in Registry.open(home.registry_dir).events()[before:] if e.type == "spawn-requested"]
    assert [e.data["domain"] for e in live] == ["code"]  # never general (the parent's), never medical (served)
    assert live[0].actor == "detector" and live[0].data["volume_share"] > 0.8 and live[0].data["queries"] <= 25


def test_with_auto_breed_a_live_spawn_request_breeds_as_the_breeder_and_promotes_nothing(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    before = len(registry.events())
    breeder = load_governance(home.root).breeder
    pruned = next(c for c in registry.find(kind="child") if c.manifest.recipe["domain"] == "code")
    assert pruned.state == "retired"
    app = create_app(home, replace(load_server_config(), detector_window_queries=25, auto_breed=True))
    with serve_app(app) as base_url:
        state = app.state.breedlab
        client = OpenAI(base_url=base_url + "/v1", api_key="unused", max_retries=0, timeout=60)
        for text in labelled_snippets(state.registry, ["code"], "test", seed=3, limit=25)["code"]:
            client.completions.create(model="auto", prompt=text, max_tokens=1)
        state.monitor.flush(timeout=60)
        deadline = time.monotonic() + 600
        while not any(e.type == "breeding-finished" for e in registry.events()[before:]):
            assert time.monotonic() < deadline, "the auto-started breeding did not finish"
            time.sleep(0.5)
    live = registry.events()[before:]
    assert [e.type for e in live if e.type.startswith(("spawn-", "breeding-"))] == [
        "spawn-requested", "breeding-triggered", "breeding-finished"]
    finished = next(e for e in live if e.type == "breeding-finished")
    assert finished.actor == breeder and finished.data["child"], finished.reason
    # Breeding is deterministic: the recipe re-derives the code child the demo pruned (same id), re-evaluated
    # on the frozen suites; it stays retired until an approver shadows it again. The server promotes nothing.
    assert finished.data["child"] == pruned.id and registry.get(pruned.id).state == "retired"
    assert "re-derived it: retired until now" in finished.reason and "/admin/promote" in finished.reason
    assert not [e for e in live if e.type == "promoted"]
    governance = load_governance(home.root)  # the approver can bring it back, through shadow, on that evidence
    promote(registry, governance, pruned.id, "shadow", niche="code", approver=governance.approvers[0], reason="t")
    assert registry.get(pruned.id).state == "shadow"
