"""People's feedback on served responses: stored per model and niche, counted, shown, and gating a canary."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from breedlab.ecosystem.feedback import Approval, FeedbackStore, UnknownResponse, approval_bound
from breedlab.ecosystem.rollout import Rollout, RolloutConfig, judge
from breedlab.governance.config import load_governance
from breedlab.server.config import load_server_config
from breedlab.server.tokens import create_token
from tests.server_fixture import quick_home, running_server


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return quick_home(tmp_path_factory)


def _chat(base_url: str, text: str) -> dict:
    response = httpx.post(f"{base_url}/v1/chat/completions", timeout=120,
                          json={"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": text}]})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_rating_is_stored_with_its_model_counted_and_shown(home):
    with running_server(home) as base_url:
        answer = _chat(base_url, "def parse(line): return line.split(',')")
        rated = httpx.post(f"{base_url}/v1/feedback", json={"id": answer["id"], "rating": 1, "comment": "good"})
        assert rated.status_code == 200, rated.text
        body = rated.json()
        assert body["model"] == answer["breedlab"]["artifact_id"] and body["approval"]["up"] == 1
        assert body["niche"] == (answer["breedlab"]["route"] if answer["breedlab"]["route"] != "parent" else None)
        metrics = httpx.get(f"{base_url}/metrics").text
        assert 'breedlab_feedback_total{model="' in metrics and 'rating="up"' in metrics
        assert "breedlab_approval_rate" in metrics
        state = httpx.get(f"{base_url}/dashboard/state.json").json()
        assert [a["model"] for a in state["approval"]] == [answer["breedlab"]["artifact_id"]]
        assert "approval" in state["html"] and "People" in httpx.get(f"{base_url}/").text


def test_an_unknown_response_is_404_and_a_bad_rating_422(home):
    with running_server(home) as base_url:
        answer = _chat(base_url, "What is a fever?")
        unknown = httpx.post(f"{base_url}/v1/feedback", json={"id": "chatcmpl-nope", "rating": 1})
        assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "response_not_found"
        bad = httpx.post(f"{base_url}/v1/feedback", json={"id": answer["id"], "rating": 2})
        assert bad.status_code == 422 and bad.json()["error"]["param"] == "rating"


def test_the_approval_gate_blocks_a_canary_under_its_bound():
    config = RolloutConfig(min_canary_queries=2, min_approval=0.6, min_ratings=10)
    canary = Rollout("child", "code", stage="canary", child_nll=[1.0, 1.0], champion_nll=[1.0, 1.0])
    assert judge(replace(canary), RolloutConfig(min_canary_queries=2)).action == "advance"  # no gate set
    assert "0 of 10 ratings" in judge(replace(canary), config).reason
    lukewarm = judge(replace(canary), config, Approval("child", 7, 5))  # 58%: bound well under 0.6
    assert lukewarm.action == "hold" and "approval gate not met" in lukewarm.reason
    assert judge(replace(canary), config, Approval("child", 60, 2)).action == "advance"
    assert approval_bound(7, 12) < 7 / 12 < 1 and approval_bound(0, 0) is None


def test_the_admin_api_will_not_crown_a_child_the_gate_holds(home):
    token = create_token(home.root, load_governance(home.root), "approver", "approver")
    shipped = load_server_config()
    config = replace(shipped, rollout=replace(shipped.rollout, min_approval=0.5))
    medical = _medical_children(home)[0]
    with running_server(home, config) as base_url:
        refused = httpx.post(f"{base_url}/admin/promote", headers={"authorization": f"Bearer {token}"},
                             json={"candidate": medical, "to": "champion", "niche": "medical", "reason": "test"})
    assert refused.status_code == 409 and "approval gate" in refused.json()["detail"]


def _medical_children(home) -> list[str]:
    from breedlab.registry import Registry

    return [a.id for a in Registry.open(home.registry_dir).find(kind="child", name="medical-p30-profiled")]


def test_the_store_refuses_what_it_never_served(tmp_path):
    store = FeedbackStore(tmp_path / "feedback.sqlite")
    store.served("r1", model="m", niche="code")
    assert store.rate("r1", -1) == ("m", "code") and store.rate("r1", 1) == ("m", "code")  # a re-rating replaces
    assert store.approval("m") == Approval("m", 1, 0) and store.approval("m", "medical").ratings == 0
    with pytest.raises(UnknownResponse):
        store.rate("r2", 1)
    with pytest.raises(ValueError):
        store.rate("r1", 0)
