"""The server on the fast path: a routed child whose llama.cpp check passed generates on llama.cpp, says so in
every response, and answers exactly what the hf reference answers; a refused quantization never serves."""

from __future__ import annotations

import dataclasses

import httpx
import pytest
from server_fixture import quick_home, serve_app

from breedlab.evaluation.engine_check import CheckSettings, run_check
from breedlab.registry import Registry
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config

SMALL = CheckSettings(prompts=4, prompt_tokens=16, new_tokens=12, threads=1)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    champion = next(c for c in registry.find(kind="child") if c.state == "champion")
    passed = run_check(registry, home.cache_dir, champion.id, "llamacpp", "f32", None, SMALL, actor="evaluator")
    refused = run_check(registry, home.cache_dir, champion.id, "llamacpp", "q4_0", None,
                        dataclasses.replace(SMALL, nll_bound=1e-7), actor="evaluator")
    assert passed.manifest.metrics["passed"] and not refused.manifest.metrics["passed"]
    return home, champion


def _answers(home, config, model: str, prompts: list[str]) -> list[dict]:
    with serve_app(create_app(home, config)) as base_url:
        return [httpx.post(f"{base_url}/v1/completions", timeout=60,
                           json={"model": model, "prompt": p, "max_tokens": 12, "temperature": 0}).json()
                for p in prompts]


def test_a_checked_child_serves_on_llamacpp_with_hfs_exact_answers(home):
    home, champion = home
    prompts = ["Patient presents with fever and", "The dose was reduced because", "def mean(values):"]
    config = load_server_config()
    fast = _answers(home, config, champion.id[:12], prompts)
    reference = _answers(home, dataclasses.replace(config, engine="hf"), champion.id[:12], prompts)
    for answer, exact in zip(fast, reference):
        assert (answer["breedlab"]["engine"], answer["breedlab"]["quantization"]) == ("llamacpp", "f32")
        assert (exact["breedlab"]["engine"], exact["breedlab"]["quantization"]) == ("hf", "fp32")
        assert answer["choices"][0]["text"] == exact["choices"][0]["text"]


def test_the_parent_without_a_check_serves_on_hf(home):
    home, _ = home
    answer = _answers(home, load_server_config(), "pico-parent", ["The weather today"])[0]
    assert (answer["breedlab"]["engine"], answer["breedlab"]["quantization"]) == ("hf", "fp32")
