"""The server on the fast path: each model generates on the fastest engine whose recorded check passed (the
quick demo's lab checks every model it measures on llama.cpp Q8_0), says so in every response, and a
refused quantization never serves; ``engine: hf`` serves the reference."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from server_fixture import quick_home, serve_app

from breedlab.evaluation.engine_check import CheckSettings, run_check
from breedlab.evaluation.engine_choice import passing_candidates
from breedlab.registry import Registry
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config

SMALL = CheckSettings(prompts=4, prompt_tokens=16, new_tokens=12, threads=1)
PROMPTS = ["Patient presents with fever and", "The dose was reduced because"]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    champion = next(c for c in registry.find(kind="child") if c.state == "champion")
    refused = run_check(registry, home.cache_dir, champion.id, "llamacpp", "q4_0", None,
                        dataclasses.replace(SMALL, nll_bound=1e-7), actor="evaluator")
    assert not refused.manifest.metrics["passed"]
    return home, registry, champion


def _answers(home, config, model: str) -> list[dict]:
    with serve_app(create_app(home, config)) as base_url:
        return [httpx.post(f"{base_url}/v1/completions", timeout=60,
                           json={"model": model, "prompt": p, "max_tokens": 12, "temperature": 0}).json()
                for p in PROMPTS]


def _served_engine(answer: dict) -> tuple[str, str]:
    return answer["breedlab"]["engine"], answer["breedlab"]["quantization"]


def test_each_model_serves_on_its_fastest_passed_engine_and_says_so(home):
    home, registry, champion = home
    for model in (champion, next(p for p in registry.find(kind="parent") if p.state == "champion")):
        fastest = passing_candidates(registry, model.id)[0]  # the lab checked it on llama.cpp Q8_0
        assert fastest.backend == "llamacpp"
        for answer in _answers(home, load_server_config(), model.id[:12]):
            assert _served_engine(answer) == (fastest.backend, fastest.quantization) != ("llamacpp", "q4_0")
            assert answer["choices"][0]["text"] is not None and answer["breedlab"]["artifact_id"] == model.id


def test_the_hf_setting_serves_the_reference(home):
    home, _, champion = home
    for answer in _answers(home, dataclasses.replace(load_server_config(), engine="hf"), champion.id[:12]):
        assert _served_engine(answer) == ("hf", "fp32")


def test_an_f32_engine_answers_exactly_what_hf_answers(home, monkeypatch):
    """With only exact checks counted, the server's llama.cpp answers are hf's, token for token."""
    home, registry, champion = home
    check = run_check(registry, home.cache_dir, champion.id, "llamacpp", "f32", None, SMALL, actor="evaluator")
    assert check.manifest.metrics["passed"] and check.manifest.metrics["greedy_identical"] == 1.0
    from breedlab.evaluation import engine_choice

    exact_only = [c for c in passing_candidates(registry, champion.id) if c.quantization == "f32"]
    with monkeypatch.context() as patch:
        patch.setattr(engine_choice, "passing_candidates",
                      lambda registry, model_id: exact_only if model_id == champion.id else [])
        fast = _answers(home, load_server_config(), champion.id[:12])
    reference = _answers(home, dataclasses.replace(load_server_config(), engine="hf"), champion.id[:12])
    for answer, exact in zip(fast, reference):
        assert _served_engine(answer) == ("llamacpp", "f32") and _served_engine(exact) == ("hf", "fp32")
        assert answer["choices"][0]["text"] == exact["choices"][0]["text"]
