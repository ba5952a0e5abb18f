"""Bad input, broken children and overload: clear 4xx in the OpenAI error shape, never a 500.

The module's server runs on a copy of the quick demo whose medical champion has
a corrupted weights file (so it must fall back to the parent), with one
generation slot and a queue of one (so a burst gets 429), and a small body
limit (413).
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import replace
from types import SimpleNamespace

import httpx
import pytest
from server_fixture import quick_home, serve_app

from breedlab.ecosystem.setup import labelled_snippets
from breedlab.registry import Registry
from breedlab.server.app import create_app, drain
from breedlab.server.config import ServerConfig, load_server_config
from breedlab.server.limiter import Limiter, QueueFull, SlotTimeout

BODY_LIMIT = 50_000
LONG = "the patient " * 400  # ~800 pico tokens: over the 512-token context


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    champion = next(a for a in registry.find(kind="child", state="champion"))
    weights = champion.path / "model.safetensors"
    weights.chmod(0o644)
    raw = bytearray(weights.read_bytes())
    raw[-64:] = bytes(64)  # same size, different bytes: only the re-hash can tell
    weights.write_bytes(bytes(raw))
    config = replace(load_server_config(), max_concurrency=1, queue_limit=1, max_request_bytes=BODY_LIMIT)
    app = create_app(home, config)
    with serve_app(app) as base_url:
        yield httpx.Client(base_url=base_url, timeout=60), app.state.breedlab, champion.id


def _check_error(response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


def test_a_child_that_fails_to_load_falls_back_to_the_parent_with_a_warning_event(broken):
    client, state, champion = broken
    prompts = labelled_snippets(state.registry, ["medical"], "test", seed=0, limit=20)["medical"]
    prompt = next(p for p in prompts if state.policy.scores([p]).max() >= state.policy.threshold)
    for _ in range(2):
        body = client.post("/v1/completions", json={"model": "auto", "prompt": prompt, "max_tokens": 4}).json()
        assert body["breedlab"]["artifact_id"] == state.parent_id and body["breedlab"]["route"] == "medical"
        assert champion[:12] in body["breedlab"]["fallback"] and "FrozenModelTampered" in body["breedlab"]["reason"]
    events = [e for e in state.registry.events(champion) if e.type == "serve-fallback"]
    assert len(events) == 1 and events[0].actor == "ecosystem" and events[0].data["parent"] == state.parent_id
    explicit = client.post("/v1/completions", json={"model": champion[:12], "prompt": "x", "max_tokens": 2})
    assert explicit.status_code == 200 and explicit.json()["breedlab"]["artifact_id"] == state.parent_id
    assert 'breedlab_serve_fallbacks_total{child="' + champion[:12] in client.get("/metrics").text


BAD_INPUT = [
    ("malformed JSON", {"content": b'{"model": "auto", "prompt": ', "headers": {"content-type": "application/json"}},
     "/v1/completions", "invalid_json", None),
    ("not an object", {"json": ["auto", "hello"]}, "/v1/completions", "invalid_body", None),
    ("missing model", {"json": {"prompt": "hello"}}, "/v1/completions", "missing_required_parameter", "model"),
    ("missing prompt", {"json": {"model": "auto"}}, "/v1/completions", "missing_required_parameter", "prompt"),
    ("missing messages", {"json": {"model": "auto"}}, "/v1/chat/completions", "missing_required_parameter",
     "messages"),
    ("prompt of wrong type", {"json": {"model": "auto", "prompt": 42}}, "/v1/completions", "invalid_value",
     "prompt"),
    ("token-id prompt", {"json": {"model": "auto", "prompt": [1, 2, 3]}}, "/v1/completions", "unsupported_prompt",
     "prompt"),
    ("mixed prompt list", {"json": {"model": "auto", "prompt": ["a", 2]}}, "/v1/completions", "invalid_value",
     "prompt"),
    ("max_tokens of wrong type", {"json": {"model": "auto", "prompt": "hi", "max_tokens": "many"}},
     "/v1/completions", "invalid_value", "max_tokens"),
    ("zero max_tokens", {"json": {"model": "auto", "prompt": "hi", "max_tokens": 0}}, "/v1/completions",
     "invalid_value", "max_tokens"),
    ("negative max_tokens", {"json": {"model": "auto", "prompt": "hi", "max_tokens": -5}}, "/v1/completions",
     "invalid_value", "max_tokens"),
    ("absurd max_tokens", {"json": {"model": "auto", "prompt": "hi", "max_tokens": 10**12}}, "/v1/completions",
     "max_tokens_too_large", "max_tokens"),
    ("answer past the context", {"json": {"model": "auto", "prompt": "the " * 300, "max_tokens": 500}},
     "/v1/completions", "context_length_exceeded", "max_tokens"),
    ("prompt over the context", {"json": {"model": "auto", "prompt": LONG}}, "/v1/completions",
     "context_length_exceeded", "prompt"),
    ("chat over the context", {"json": {"model": "auto", "messages": [{"role": "user", "content": LONG}]}},
     "/v1/chat/completions", "context_length_exceeded", "prompt"),
    ("unknown model", {"json": {"model": "gpt-9", "prompt": "hi"}}, "/v1/completions", "model_not_found", "model"),
    ("empty model", {"json": {"model": "", "prompt": "hi"}}, "/v1/completions", "invalid_value", "model"),
    ("n > 1", {"json": {"model": "auto", "prompt": "hi", "n": 3}}, "/v1/completions", "invalid_value", "n"),
    ("batched prompts", {"json": {"model": "auto", "prompt": ["a", "b"]}}, "/v1/completions", "unsupported_batch",
     "prompt"),
    ("logprobs", {"json": {"model": "auto", "prompt": "hi", "logprobs": 5}}, "/v1/completions", "invalid_value",
     "logprobs"),
    ("echo", {"json": {"model": "auto", "prompt": "hi", "echo": True}}, "/v1/completions", "invalid_value", "echo"),
    ("temperature too high", {"json": {"model": "auto", "prompt": "hi", "temperature": 7}}, "/v1/completions",
     "invalid_value", "temperature"),
    ("top_p zero", {"json": {"model": "auto", "prompt": "hi", "top_p": 0}}, "/v1/completions", "invalid_value",
     "top_p"),
    ("five stop strings", {"json": {"model": "auto", "prompt": "hi", "stop": list("abcde")}}, "/v1/completions",
     "invalid_value", "stop"),
    ("no messages", {"json": {"model": "auto", "messages": []}}, "/v1/chat/completions", "invalid_value",
     "messages"),
    ("unknown role", {"json": {"model": "auto", "messages": [{"role": "wizard", "content": "hi"}]}},
     "/v1/chat/completions", "invalid_value", "messages.0.role"),
    ("message without role", {"json": {"model": "auto", "messages": [{"content": "hi"}]}},
     "/v1/chat/completions", "missing_required_parameter", "messages.0.role"),
    ("disagreeing token limits", {"json": {"model": "auto", "messages": [{"role": "user", "content": "hi"}],
                                           "max_tokens": 3, "max_completion_tokens": 4}},
     "/v1/chat/completions", "invalid_value", "max_tokens"),
]


@pytest.mark.parametrize("case,request_kwargs,path,code,param", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_gets_a_clear_4xx_in_the_openai_error_shape(broken, case, request_kwargs, path, code, param):
    status = 404 if code == "model_not_found" else 400  # OpenAI's own status for an unknown model
    _check_error(broken[0].post(path, **request_kwargs), status, code, param)


def test_a_query_refused_after_it_was_read_is_logged_to_the_task_monitor(broken):
    """Refused demand is still demand: the detector sees a too-long or misaddressed query (issue 6 item 3)."""
    client, state, _ = broken
    marker = "refused-query-marker"
    for body in ({"model": "auto", "prompt": f"{marker} " + LONG},
                 {"model": "gpt-9", "prompt": f"{marker} unknown model"},
                 {"model": "auto", "prompt": f"{marker} fine", "max_tokens": 10 ** 6}):
        assert client.post("/v1/completions", json=body).status_code in (400, 404)
    state.monitor.flush(30)
    rows = state.monitor.call(lambda m: m.conn.execute(
        "SELECT model, tokens FROM queries WHERE text LIKE ? ORDER BY id", (f"{marker}%",)).fetchall()).result(30)
    assert [(r["model"], r["tokens"]) for r in rows] == [
        ("refused:context_length_exceeded", 0), ("refused:model_not_found", 0), ("refused:max_tokens_too_large", 0)]


def test_unknown_endpoints_methods_and_huge_bodies_get_4xx(broken):
    client = broken[0]
    _check_error(client.get("/v1/engines"), 404)
    _check_error(client.get("/v1/completions"), 405)
    _check_error(client.get("/v1/models/no-such-model"), 404, "model_not_found")
    _check_error(client.post("/v1/completions", json={"model": "auto", "prompt": "x" * (BODY_LIMIT + 10)}), 413,
                 "body_too_large")


def test_a_burst_past_the_queue_gets_429_and_the_rest_are_served(broken):
    client = broken[0]
    statuses, errors = [], []

    def call() -> None:
        response = client.post("/v1/completions", json={"model": "parent", "prompt": "Once upon a time",
                                                        "max_tokens": 300})
        statuses.append(response.status_code)
        if response.status_code == 429:
            errors.append((response.json()["error"], response.headers.get("retry-after")))

    threads = [threading.Thread(target=call) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(200) >= 2 and statuses.count(429) >= 1 and set(statuses) <= {200, 429}
    assert all(e["code"] == "queue_full" and e["type"] == "rate_limit_error" and retry for e, retry in errors)
    assert 'breedlab_refused_total{reason="queue_full"}' in client.get("/metrics").text


def test_a_client_that_leaves_stops_its_generation(broken):
    """Plain and streamed: the answer is abandoned, counted, and no further token is generated."""
    client, state, _ = broken
    body = {"model": "parent", "prompt": "Once upon a time", "max_tokens": 480}
    sample = state.metrics.registry.get_sample_value
    tokens_before = _completion_tokens(state)
    with pytest.raises(httpx.TimeoutException):
        httpx.post(f"{client.base_url}/v1/completions", json=body, timeout=0.15)
    with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as stream:
        assert next(stream.iter_lines()).startswith("data: ")  # the first event, then hang up
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (sample("breedlab_client_disconnects_total", {"kind": "plain"})
                                               and sample("breedlab_client_disconnects_total", {"kind": "stream"})):
        time.sleep(0.05)
    assert sample("breedlab_client_disconnects_total", {"kind": "plain"}) == 1
    assert sample("breedlab_client_disconnects_total", {"kind": "stream"}) == 1
    assert _completion_tokens(state) - tokens_before < 2 * body["max_tokens"]  # both stopped early
    assert sample("breedlab_requests_total", {"model": "pico-parent", "endpoint": "/v1/completions",
                                              "status": "499"}) == 1
    assert client.post("/v1/completions", json={**body, "max_tokens": 1}).status_code == 200  # the slot is free


def _completion_tokens(state) -> float:
    return sum(s.value for metric in state.metrics.tokens.collect() for s in metric.samples
               if s.name == "breedlab_tokens_total" and s.labels["kind"] == "completion")


def test_while_draining_new_requests_get_503(broken):
    client, state, _ = broken
    state.draining = True
    try:
        _check_error(client.post("/v1/completions", json={"model": "auto", "prompt": "hi"}), 503, "unavailable")
    finally:
        state.draining = False
    assert client.post("/v1/completions", json={"model": "parent", "prompt": "hi", "max_tokens": 1}).status_code == 200


def test_drain_waits_for_in_flight_requests_up_to_its_timeout():
    async def scenario(finish_after: float, timeout: float) -> tuple[float, bool]:
        state = SimpleNamespace(draining=False, inflight=1)

        async def finish() -> None:
            await asyncio.sleep(finish_after)
            state.inflight = 0
        task = asyncio.create_task(finish())
        start = asyncio.get_running_loop().time()
        await drain(state, timeout)
        waited = asyncio.get_running_loop().time() - start
        task.cancel()
        return waited, state.draining
    waited, draining = asyncio.run(scenario(0.2, 5.0))
    assert draining and 0.15 < waited < 1.0
    waited, _ = asyncio.run(scenario(5.0, 0.2))
    assert 0.15 < waited < 1.0


def test_the_limiter_queues_then_refuses_then_times_out():
    async def scenario() -> None:
        limiter = Limiter(max_concurrency=1, queue_limit=1)
        slot = await limiter.acquire(1.0)
        waiting = asyncio.create_task(limiter.acquire(1.0))
        await asyncio.sleep(0.01)
        with pytest.raises(QueueFull):
            await limiter.acquire(1.0)
        slot.release()
        slot.release()  # idempotent: the second release must not free a second slot
        second = await waiting
        assert limiter.running == 1 and limiter.waiting == 0
        with pytest.raises(SlotTimeout):
            await limiter.acquire(0.05)
        second.release()
        assert limiter.running == 0
    asyncio.run(scenario())


def test_the_shipped_server_config_loads_and_unknown_keys_are_errors(tmp_path):
    config = load_server_config()
    assert config.host == "127.0.0.1" and config.rollout.canary_share > 0 and config.lifecycle.actor
    bad = tmp_path / "ecosystem.yaml"
    bad.write_text("server:\n  port: 8000\n  turbo: true\n")
    with pytest.raises(ValueError, match="turbo"):
        load_server_config(bad)
    with pytest.raises(ValueError):
        ServerConfig(default_max_tokens=1000, max_new_tokens_limit=10)
