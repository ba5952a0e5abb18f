"""The engine layer on a pico parent: every backend against hf, recorded checks, and which engine serves."""

from __future__ import annotations

import dataclasses
import threading

import pytest
import torch

from breedlab.engines import Sampling, get_backend
from breedlab.engines.loading import load_engine, model_folder
from breedlab.evaluation.engine_check import CHECK_KIND, CheckSettings, run_check
from breedlab.evaluation.engine_choice import serving_engine
from breedlab.evaluation.passages import case_blocks
from breedlab.evaluation.suites import build_suite, load_suite
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.registry import Registry

EXACT = [("llamacpp", "f32"), ("ctranslate2", "float32")]
LOSSY = [("llamacpp", "q8_0"), ("ctranslate2", "int8")]
SMALL = CheckSettings(prompts=4, prompt_tokens=16, new_tokens=12, threads=1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("engines") / "home")
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir, domains=("code", "general"), docs=40)
    _, tokenizer = load_model(pico.parent.path)
    suite = build_suite(registry, "retention", "general", tokenizer=tokenizer, cases=8, tokens=32)
    return home, registry, pico.parent, load_suite(registry, suite.id), tokenizer


def _engine(lab, backend, quantization):
    home, _, parent, _, _ = lab
    return load_engine(parent, backend, quantization, home.cache_dir, threads=1)


def _prompts(lab) -> list[list[int]]:
    _, _, _, suite, tokenizer = lab
    return [row[:16] for row in case_blocks(tokenizer, suite.cases, 32).tolist()[:4]]


def _greedy(engine, prompt, tokens=12):
    return list(engine.token_ids(prompt, Sampling(max_new_tokens=tokens), threading.Event()))


@pytest.mark.parametrize("backend,quantization", EXACT)
def test_an_exact_backend_generates_hfs_greedy_tokens_and_its_scores(lab, backend, quantization):
    reference, engine = _engine(lab, "hf", "fp32"), _engine(lab, backend, quantization)
    for prompt in _prompts(lab):
        assert _greedy(engine, prompt) == _greedy(reference, prompt)
        assert engine.nll(prompt) == pytest.approx(reference.nll(prompt), abs=1e-4)
    engine.close()


@pytest.mark.parametrize("backend,quantization", LOSSY)
def test_a_quantized_backend_scores_near_hf(lab, backend, quantization):
    reference, engine = _engine(lab, "hf", "fp32"), _engine(lab, backend, quantization)
    prompt = _prompts(lab)[0]
    diffs = [abs(a - b) for a, b in zip(engine.nll(prompt), reference.nll(prompt))]
    assert 0 < max(diffs) < 0.1  # it really is quantized, and still the same model
    engine.close()


def test_seeded_sampling_draws_the_same_tokens_on_hf_and_llamacpp(lab):
    sampling = Sampling(max_new_tokens=10, temperature=0.9, top_p=0.95, seed=7)
    prompt = _prompts(lab)[1]
    drawn = [list(e.token_ids(prompt, sampling, threading.Event()))
             for e in (_engine(lab, "hf", "fp32"), _engine(lab, "llamacpp", "f32"))]
    assert drawn[0] == drawn[1]


def test_a_passing_check_is_recorded_and_lets_its_engine_serve(lab):
    home, registry, parent, suite, _ = lab
    check = run_check(registry, home.cache_dir, parent.id, "llamacpp", "f32", suite.id, SMALL)
    metrics, recipe = check.manifest.metrics, check.manifest.recipe
    assert check.manifest.kind == CHECK_KIND and check.manifest.parents == (parent.id,)
    assert check.manifest.data == (suite.id,) and metrics["passed"] and metrics["greedy_identical"] == 1.0
    assert abs(metrics["nll_delta"]) < 1e-4 and recipe["backend_version"] == get_backend("llamacpp").version()
    assert set(recipe["engine_files"]) == {"model.gguf"}
    chosen = serving_engine(registry, parent, home.cache_dir, threads=1)
    assert (chosen.engine.backend, chosen.engine.quantization, chosen.check) == ("llamacpp", "f32", check.id)
    assert serving_engine(registry, parent, home.cache_dir, fast=False).engine.backend == "hf"


def test_a_failing_check_is_recorded_with_its_reason_and_never_serves(lab):
    home, registry, parent, suite, _ = lab
    check = run_check(registry, home.cache_dir, parent.id, "llamacpp", "q4_0", suite.id,
                      dataclasses.replace(SMALL, nll_bound=1e-6))
    assert not check.manifest.metrics["passed"] and "beyond the bound" in check.manifest.metrics["reason"]
    chosen = serving_engine(registry, parent, home.cache_dir, threads=1)
    assert chosen.engine.quantization != "q4_0"


def test_a_check_made_on_another_backend_version_is_skipped_with_the_reason(lab, monkeypatch):
    home, registry, parent, suite, _ = lab
    run_check(registry, home.cache_dir, parent.id, "llamacpp", "f32", suite.id, SMALL)
    backend_class = type(get_backend("llamacpp"))
    monkeypatch.setattr(backend_class, "version", lambda self: "llama-cpp-python-9.9.9")
    chosen = serving_engine(registry, parent, home.cache_dir, threads=1)
    assert chosen.engine.backend != "llamacpp" or chosen.check is None
    assert any("9.9.9 is installed" in reason for reason in chosen.skipped)


def test_a_model_a_backend_cannot_run_is_refused_with_the_reason(lab):
    _, _, parent, _, _ = lab
    folder = model_folder(parent)
    odd = dataclasses.replace(folder, config={**folder.config, "architectures": ["GPT2LMHeadModel"]})
    assert "LlamaForCausalLM" in get_backend("llamacpp").unsupported(odd, "q8_0")
    assert "LlamaForCausalLM" in get_backend("ctranslate2").unsupported(odd, "int8")
    assert "unknown quantization" in get_backend("llamacpp").unsupported(folder, "q3_xyz")
