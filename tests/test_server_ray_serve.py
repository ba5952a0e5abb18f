"""``breedlab serve --ray``: read replicas on Ray Serve answer with the routing fields, one writer writes."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from breedlab.ecosystem.setup import labelled_snippets
from breedlab.governance.config import load_governance
from breedlab.registry import Registry
from breedlab.server.config import load_server_config
from breedlab.server.tokens import create_token
from tests.cluster_fixture import local_ray  # noqa: F401
from tests.server_fixture import code_candidate, quick_home

REPLICAS = 2


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory, local_ray):  # noqa: F811
    from dataclasses import replace

    from ray import serve

    from breedlab.server.ray_serve import deploy

    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    token = create_token(home.root, load_governance(home.root), "approver", "approver")
    candidate = code_candidate(registry, "code-p30-replicated", seed=3)
    config = replace(load_server_config(), port=_free_port(), shadow_record_every=1)
    deploy(str(home.root), config, REPLICAS, cpus_per_replica=0.5, writer_cpus=0.5)
    base = f"http://127.0.0.1:{config.port}"
    _wait_ready(base)
    yield base, registry, token, candidate
    serve.shutdown()


def _wait_ready(base: str, timeout: float = 180.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{base}/v1/models", timeout=10).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise TimeoutError("the Serve replicas did not answer")


def _chat(base: str, text: str) -> httpx.Response:
    return httpx.post(f"{base}/v1/chat/completions", timeout=120,
                      json={"model": "auto", "max_tokens": 4, "messages": [{"role": "user", "content": text}]})


def test_the_replicas_answer_with_the_routing_fields_and_say_which_replica_they_are(served):
    base, _, _, _ = served
    seen = set()
    for number in range(10):
        answer = _chat(base, f"def parse_{number}(line): return line.split(',')")
        assert answer.status_code == 200, answer.text
        routed = answer.json()["breedlab"]
        assert routed["route"] and routed["artifact_id"] and routed["reason"]
        seen.add(answer.headers["x-breedlab-replica"])
    assert len(seen) == REPLICAS and "writer" not in seen  # Serve spreads the load; the writer serves none
    metrics = httpx.get(f"{base}/metrics")
    assert f'breedlab_replica_info{{replica="{metrics.headers["x-breedlab-replica"]}"}} 1.0' in metrics.text
    state = httpx.get(f"{base}/dashboard/state.json").json()
    assert state["replica"] in seen


def test_admin_and_feedback_writes_go_to_the_one_writer_and_every_replica_sees_them(served):
    base, registry, token, candidate = served
    answer = _chat(base, "def parse(line): return line.split(',')").json()
    rated = httpx.post(f"{base}/v1/feedback", json={"id": answer["id"], "rating": 1}, timeout=60)
    assert rated.status_code == 200, rated.text
    assert rated.headers["x-breedlab-written-by"] == "writer"
    promoted = httpx.post(f"{base}/admin/promote", headers={"Authorization": f"Bearer {token}"}, timeout=60,
                          json={"candidate": candidate[:12], "to": "shadow", "niche": "code", "reason": "replicated"})
    assert promoted.status_code == 200, promoted.text
    assert promoted.headers["x-breedlab-written-by"] == "writer"
    assert registry.get(candidate).state == "shadow"
    for _ in range(2 * REPLICAS):  # whichever replica answers has read the writer's promotion
        state = httpx.get(f"{base}/dashboard/state.json", timeout=60).json()
        assert {m["id"]: m["state"] for m in state["models"]}.get(candidate) == "shadow"


def test_shadow_jobs_are_scored_and_recorded_by_the_writer(served):
    base, registry, _, candidate = served
    assert registry.get(candidate).state == "shadow"  # promoted through a replica by the test above
    for snippet in labelled_snippets(registry, ["code"], "test", seed=1, limit=8)["code"]:
        assert _chat(base, snippet).status_code == 200  # the code ones reach the shadow, scored by the writer
    deadline = time.time() + 120
    while time.time() < deadline and not [e for e in registry.events(candidate) if e.type == "shadow-scored"]:
        time.sleep(1)
    scored = [e for e in registry.events(candidate) if e.type == "shadow-scored"]
    assert scored and scored[0].actor == load_server_config().lifecycle.actor
    writer_metrics = httpx.get(f"{base}/metrics/writer", timeout=60)
    assert writer_metrics.status_code == 200 and 'breedlab_replica_info{replica="writer"} 1.0' in writer_metrics.text
    assert "breedlab_shadow_scores_total" in writer_metrics.text
