"""Shadow and canary on live traffic through the server, with a deliberately damaged child.

The damaged child is the parent's weights plus Gaussian noise registered as a
child (the pattern of ``test_ecosystem_lifecycle.damaged_child``): live
evidence must find it worse. In medical it shadows the champion child (its
answers are scored and never returned); in code it is a canary against the
parent, and the server's own gate must roll it back.
"""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest
import torch
from prometheus_client.parser import text_string_to_metric_families
from server_fixture import quick_home, serve_app

from breedlab.ecosystem.setup import labelled_snippets
from breedlab.evaluation.measure import load_candidate
from breedlab.models.io import save_model
from breedlab.registry import Registry
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config
from breedlab.server.generation import Generation, Sampling, eos_ids

RECORD_EVERY = 4


def damaged_child(registry: Registry, home, parent_id: str, name: str, domain: str, scale: float) -> str:
    model, tokenizer = load_candidate(registry.get(parent_id))
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * scale)
    folder = save_model(model, tokenizer, home.cache_dir / name)
    files = {p.name: p for p in folder.iterdir() if p.is_file()}
    child = registry.register("child", name, files, operator="test-damage", recipe={"domain": domain},
                              parents=[parent_id], actor="breeder")
    return child.id


@pytest.fixture(scope="module")
def eco(tmp_path_factory):
    """A server whose registry gains a shadow child (medical) and a canary child (code) before it starts."""
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    parent_id = registry.find(kind="parent", state="champion")[0].id
    children = {}
    for niche, stage in (("medical", "shadow"), ("code", "canary")):
        child = damaged_child(registry, home, parent_id, f"{niche}-damaged", niche, scale=0.5)
        registry.transition(child, stage, event_type="promoted", actor="approver",
                            reason=f"test: {stage} a damaged child", data={"niche": niche})
        children[niche] = child
    config = load_server_config()
    config = replace(config, shadow_record_every=RECORD_EVERY, rollout=replace(config.rollout, canary_share=0.5))
    app = create_app(home, config)
    with serve_app(app) as base_url:
        yield httpx.Client(base_url=base_url, timeout=60), app.state.breedlab, children


def _confident(state, niche: str, count: int) -> list[str]:
    pool = labelled_snippets(state.registry, [niche], "test", seed=1, limit=80)[niche]
    return [t for t in pool if state.policy.scores([t]).max() >= state.policy.threshold][:count]


def _complete(client, model: str, prompt: str) -> dict:
    response = client.post("/v1/completions", json={"model": model, "prompt": prompt, "max_tokens": 8})
    assert response.status_code == 200, response.text
    return response.json()


def test_shadow_answers_are_scored_and_recorded_and_never_returned(eco):
    client, state, children = eco
    shadow = children["medical"]
    champion = state.catalogue.name_of(state.routes["medical"])
    prompts = _confident(state, "medical", RECORD_EVERY)
    served = [_complete(client, "auto", p) for p in prompts]
    state.rollouts.flush()
    shadow_model = state.host.get(shadow)
    shadow_texts = [Generation(shadow_model.engine, shadow_model.tokenizer,
                               shadow_model.tokenizer(p, add_special_tokens=False)["input_ids"],
                               Sampling(max_new_tokens=8), eos_ids(shadow_model.tokenizer)).run() for p in prompts]
    for prompt, body in zip(prompts, served):
        assert body["breedlab"]["served_by"] == champion and not body["breedlab"]["canary"]
        assert body["choices"][0]["text"] == _complete(client, champion, prompt)["choices"][0]["text"]
    assert any(s != b["choices"][0]["text"] for s, b in zip(shadow_texts, served))  # the check can tell them apart
    event = next(e for e in state.registry.events(shadow) if e.type == "shadow-scored")
    assert event.data["queries"] == RECORD_EVERY and event.data["niche"] == "medical"
    assert event.data["mean_delta"] > 0 and event.data["child_nll"] > event.data["champion_nll"]
    assert event.actor == "ecosystem" and "never returned" in event.reason


def test_a_shadow_child_is_listed_but_cannot_be_asked_for_by_name(eco):
    client, state, children = eco
    listed = {m["breedlab"]["artifact_id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed[children["medical"]]["breedlab"]["servable"] is False
    response = client.post("/v1/completions", json={"model": "medical-damaged", "prompt": "x", "max_tokens": 2})
    assert response.status_code == 404 and response.json()["error"]["code"] == "model_in_shadow"


def test_a_canary_that_breaks_the_live_gate_is_rolled_back_automatically(eco):
    client, state, children = eco
    canary = children["code"]
    served_by_canary = 0
    for prompt in _confident(state, "code", 40):
        body = _complete(client, "auto", prompt)
        served_by_canary += body["breedlab"]["canary"]
        state.rollouts.flush()
        if state.registry.get(canary).state != "canary":
            break
    assert state.registry.get(canary).state == "rejected"
    assert served_by_canary >= state.config.rollout.min_canary_queries
    event = state.registry.events(canary)[-1]
    assert event.type == "rolled-back" and event.actor == state.config.lifecycle.actor
    assert "max_live_regression" in event.reason and event.data["mean_delta"] > state.config.rollout.max_live_regression
    assert event.data["niche"] == "code" and event.data["queries"] >= state.config.rollout.min_canary_queries
    after = [_complete(client, "auto", p)["breedlab"] for p in _confident(state, "code", 6)]
    assert all(not b["canary"] and b["artifact_id"] == state.parent_id for b in after)
    metrics = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    gauge = [s for s in metrics["breedlab_canary_state"].samples if s.labels["child"] == canary[:12]]
    assert gauge and gauge[0].value == 0
    assert any(s.value == 1 for s in metrics["breedlab_canary_rollbacks"].samples if s.name.endswith("_total"))

