"""The OpenAI-compatible server on the quick demo's ecosystem, through the official ``openai`` client.

One server per module (uvicorn on a loopback port, ``server_fixture``): the
quick demo leaves a pico parent, a medical champion child and a retired code
child, so ``auto`` sends confident medical text to the child and everything
else to the parent. Every assertion reads what a client can see (bodies,
headers, /metrics) or what the server left behind (the task monitor's SQLite).
"""

from __future__ import annotations

import sqlite3

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families
from server_fixture import quick_home, serve_app

from breedlab.ecosystem.setup import labelled_snippets
from breedlab.server.app import create_app
from breedlab.server.setup import MONITOR_FILE


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    app = create_app(home)
    with serve_app(app) as base_url:
        yield base_url, app.state.breedlab


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server[0] + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def texts(server):
    """Held-out snippets the router is confident about, by niche."""
    state = server[1]
    pools = labelled_snippets(state.registry, ["medical", "code", "general"], "test", seed=0, limit=40)
    confident = {d: [t for t in texts if state.policy.scores([t]).max() >= state.policy.threshold]
                 for d, texts in pools.items()}
    return {"medical": confident["medical"], "code": confident["code"], "general": pools["general"]}


def _champion_name(state) -> str:
    return state.catalogue.name_of(state.routes["medical"])


def test_auto_completion_routes_medical_text_to_the_champion_and_says_why(server, client, texts):
    state = server[1]
    raw = client.completions.with_raw_response.create(model="auto", prompt=texts["medical"][0], max_tokens=8)
    completion = raw.parse()
    assert raw.headers["x-breedlab-model"] == _champion_name(state) == completion.model
    assert raw.headers["x-breedlab-route"] == "medical"
    served = completion.model_extra["breedlab"]
    assert served["served_by"] == _champion_name(state) and served["route"] == "medical"
    assert served["confidence"] >= state.policy.threshold - 1e-4 and "champion" in served["reason"]
    assert completion.object == "text_completion" and completion.id.startswith("cmpl-")
    assert completion.choices[0].finish_reason in ("stop", "length")
    assert completion.usage.completion_tokens <= 8 and completion.usage.prompt_tokens > 0


def test_auto_sends_general_text_to_the_parent_the_no_op_route(server, client, texts):
    completion = client.completions.create(model="auto", prompt=texts["general"][0], max_tokens=4)
    served = completion.model_extra["breedlab"]
    assert served["served_by"] == "pico-parent" and served["route"] == "parent"
    assert "parent serves" in served["reason"]


def test_an_explicit_model_name_is_honoured(server, client, texts):
    for name in ("pico-parent", _champion_name(server[1]), server[1].routes["medical"][:10]):
        completion = client.completions.create(model=name, prompt=texts["general"][1], max_tokens=4)
        assert completion.model_extra["breedlab"]["route"] == "explicit"
        assert completion.model_extra["breedlab"]["artifact_id"].startswith(
            server[1].catalogue.find(name).id[:10])


def test_greedy_is_deterministic_and_a_seed_makes_sampling_reproducible(client, texts):
    prompt = texts["general"][2]
    greedy = [client.completions.create(model="parent", prompt=prompt, max_tokens=12).choices[0].text
              for _ in range(2)]
    sampled = [client.completions.create(model="parent", prompt=prompt, max_tokens=12, temperature=1.0,
                                         top_p=0.9, seed=s).choices[0].text for s in (7, 7, 8)]
    assert greedy[0] == greedy[1] and sampled[0] == sampled[1]
    unseeded = client.completions.create(model="parent", prompt=prompt, max_tokens=12, temperature=1.0)
    seed = unseeded.model_extra["breedlab"]["seed"]  # a fresh seed, reported so the answer can be reproduced
    again = client.completions.create(model="parent", prompt=prompt, max_tokens=12, temperature=1.0, seed=seed)
    assert again.choices[0].text == unseeded.choices[0].text


def test_streamed_completion_matches_the_plain_one(client, texts):
    prompt = texts["medical"][1]
    plain = client.completions.create(model="auto", prompt=prompt, max_tokens=12)
    chunks = list(client.completions.create(model="auto", prompt=prompt, max_tokens=12, stream=True,
                                            stream_options={"include_usage": True}))
    text = "".join(c.choices[0].text for c in chunks if c.choices)
    assert text == plain.choices[0].text
    assert chunks[-1].usage.completion_tokens == plain.usage.completion_tokens
    assert {c.model_extra["breedlab"]["served_by"] for c in chunks} == {plain.model}


def test_chat_completion_plain_and_streamed(server, client, texts):
    messages = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": texts["medical"][2]}]
    raw = client.chat.completions.with_raw_response.create(model="auto", messages=messages, max_tokens=10)
    chat = raw.parse()
    assert chat.object == "chat.completion" and chat.choices[0].message.role == "assistant"
    assert raw.headers["x-breedlab-route"] == "medical" and chat.model == _champion_name(server[1])
    stream = client.chat.completions.create(model="auto", messages=messages, max_tokens=10, stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == chat.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_models_list_the_parent_and_active_children_with_lineage(server, client):
    state = server[1]
    models = {m.id: m for m in client.models.list().data}
    parent, child = models["pico-parent"], models[_champion_name(state)]
    assert parent.model_extra["parent"] is None and parent.model_extra["root"] == "pico-parent"
    assert child.model_extra["parent"] == "pico-parent" and child.model_extra["root"] == "pico-parent"
    assert child.model_extra["breedlab"]["state"] == "champion"
    retired = [a for a in state.registry.find(kind="child") if a.state == "retired"]
    assert retired and not {a.manifest.name for a in retired} & set(models)
    assert client.models.retrieve("pico-parent").id == "pico-parent"


def test_every_request_lands_in_the_task_monitor(server, client, texts):
    state = server[1]
    state.monitor.flush()
    path = state.home.logs_dir / MONITOR_FILE
    before = sqlite3.connect(path).execute("SELECT COUNT(*) FROM queries").fetchone()[0]
    client.completions.create(model="auto", prompt=texts["medical"][3], max_tokens=4)
    client.chat.completions.create(model="auto", messages=[{"role": "user", "content": texts["code"][0]}],
                                   max_tokens=4)
    state.monitor.flush()
    rows = sqlite3.connect(path).execute("SELECT text, domain, model, tokens FROM queries ORDER BY id").fetchall()
    assert len(rows) == before + 2
    assert rows[-2][0] == texts["medical"][3] and rows[-2][2] == state.routes["medical"]
    assert rows[-1][0] == texts["code"][0] and rows[-1][2] == state.parent_id  # the user's words, not the template
    assert all(r[3] > 0 for r in rows[-2:])


def test_metrics_parse_and_count_requests_by_model_and_status(server, client, texts):
    base_url, state = server
    def count():
        families = {f.name: f for f in text_string_to_metric_families(httpx.get(base_url + "/metrics").text)}
        samples = families["breedlab_requests"].samples
        return sum(s.value for s in samples if s.name == "breedlab_requests_total"
                   and s.labels == {"model": "pico-parent", "endpoint": "/v1/completions", "status": "200"}), families
    before, _ = count()
    client.completions.create(model="parent", prompt=texts["general"][3], max_tokens=3)
    after, families = count()
    assert after == before + 1
    assert any(s.labels.get("model") == "pico-parent" for s in families["breedlab_request_latency_seconds"].samples)
    assert any(s.labels.get("kind") == "completion" for s in families["breedlab_tokens"].samples)
    assert any(s.labels.get("route") == "medical" for s in families["breedlab_routing_decisions"].samples)
    assert "breedlab_canary_state" in families


def test_routing_history_counts_served_models_per_minute(server):
    history = server[1].routing_history()
    assert history and "pico-parent" in history[-1]["served"] and history[-1]["minute"].endswith("Z")
