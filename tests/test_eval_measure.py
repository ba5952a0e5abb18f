"""measure_candidate on a pico lab: every field filled, canaries caught, NaNs seen, isolation works."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pytest
import torch

from breedlab.evaluation.cost import flops_per_token
from breedlab.evaluation.latency import LatencySettings, percentile
from breedlab.evaluation.measure import measure_candidate
from breedlab.evaluation.suites import build_suite
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import count_parameters, load_model, save_model
from breedlab.registry import Registry

QUICK = LatencySettings(new_tokens=8, repeats=2)
CANARY = {"prefix": "The vault code is", "secret": " zebra-7391-quartz"}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("measure"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    _, tokenizer = load_model(pico.parent.path)
    suites = {
        "cloze": build_suite(registry, "cloze", "code", tokenizer=tokenizer, cases=8, context_tokens=48,
                             continuation_tokens=16).id,
        "lm": build_suite(registry, "lm", "code", tokenizer=tokenizer, cases=12, tokens=32).id,
        "retention": build_suite(registry, "retention", "general", tokenizer=tokenizer, cases=12, tokens=32).id,
    }
    return registry, pico, suites


@pytest.fixture(scope="module")
def parent_fitness(lab):
    registry, pico, suites = lab
    return measure_candidate(registry, pico.parent.id, suites, parent_general_ppl=10.0, canary=CANARY,
                             latency=QUICK, isolate=False)


def test_measuring_the_parent_fills_the_fitness_vector(lab, parent_fitness):
    _, pico, suites = lab
    f = parent_fitness
    assert f.candidate == pico.parent.id and f.suites == suites
    assert 0.0 <= f.utility <= 1.0 and len(f.utility_cases) == 8 and set(f.utility_cases) <= {0, 1}
    assert 0.0 <= f.domain_accuracy <= 1.0 and f.domain_ppl > 1.0 and len(f.domain_case_nll) == 12
    assert math.isclose(math.exp(sum(f.domain_case_nll) / 12), f.domain_ppl, rel_tol=1e-6)  # equal-length cases
    assert f.general_ppl > 1.0 and math.isclose(f.general_regression, f.general_ppl - 10.0)
    assert 0 < f.latency_token_ms_p50 <= f.latency_token_ms_p95
    assert 0 < f.latency_request_ms_p50 <= f.latency_request_ms_p95
    assert f.latency_threads == QUICK.threads == 1  # timed on one thread, whatever the process uses
    weights = pico.parent.manifest.files["model.safetensors"].size
    assert f.weight_bytes == weights and f.parameters > 0 and f.flops_per_token > 0
    assert f.has_nan is False and f.data_local is True and f.network_attempts == 0
    assert f.canary_reproduced is False
    assert f.machine and f.measured_utc.endswith("Z") and f.peak_rss_bytes > 0
    assert set(f.unmeasured) == {"peak_rss_bytes"}  # measured in-process: said so, not hidden


def test_flops_formula_matches_the_parameter_count(lab):
    _, pico, _ = lab
    model, _ = load_model(pico.parent.path)
    c = model.config
    norms = sum(p.numel() for name, p in model.named_parameters() if "norm" in name)
    matmul = count_parameters(model, include_embeddings=False) - norms + c.hidden_size * c.vocab_size
    assert flops_per_token(c, 0) == 2 * matmul
    per_key = 2 * 2 * c.num_hidden_layers * c.num_attention_heads * c.head_dim
    assert flops_per_token(c, 32) - flops_per_token(c, 0) == per_key * 32


def test_latency_is_timed_on_its_threads_and_gives_the_process_its_own_back(lab):
    from breedlab.evaluation.latency import measure_latency

    _, pico, _ = lab
    model, tokenizer = load_model(pico.parent.path)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen = []
    original = model.generate
    model.generate = lambda **kw: seen.append(torch.get_num_threads()) or original(**kw)
    try:
        measure_latency(model, tokenizer, LatencySettings(prompts=("def a",), new_tokens=2, repeats=1, threads=1))
        assert set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_percentile_agrees_with_numpy():
    import numpy

    values = [5.0, 1.0, 3.0, 9.0, 2.0, 8.0]
    for q in (0, 50, 95, 100):
        assert math.isclose(percentile(values, q), float(numpy.percentile(values, q)))


def _register_finetuned(registry, pico, text: str, steps: int):
    """A child of the pico parent fine-tuned (all weights) on one text until it recites it."""
    model, tokenizer = load_model(pico.parent.path)
    ids = torch.tensor([tokenizer(text)["input_ids"] + [tokenizer.eos_token_id]])  # (1, T)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    model.train()
    for _ in range(steps):  # ~120 steps: 3e-3 memorises the 25 pico tokens; 1e-2 overshoots
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    model.eval()
    with tempfile.TemporaryDirectory() as scratch:
        folder = save_model(model, tokenizer, Path(scratch) / "child")
        files = {p.name: p for p in folder.iterdir() if p.is_file()}
        return registry.register("child", "code/canary-leak", files, operator="test-finetune",
                                 recipe={"steps": steps}, parents=[pico.parent.id],
                                 data=[pico.datasets["code"]["train"].id])


def test_a_model_that_memorised_the_canary_is_caught(lab, parent_fitness):
    registry, pico, suites = lab
    leaky = _register_finetuned(registry, pico, CANARY["prefix"] + CANARY["secret"] + ".", steps=120)
    fitness = measure_candidate(registry, leaky.id, {"lm": suites["lm"]}, canary=CANARY, latency=QUICK,
                                isolate=False)
    assert fitness.canary_reproduced is True and parent_fitness.canary_reproduced is False
    assert fitness.data_local is True  # its training data id is a local dataset artifact
    assert fitness.utility is None and "no cloze or task suite given" in fitness.unmeasured["utility"]


def test_nan_logits_are_reported_and_never_become_numbers(lab):
    registry, pico, suites = lab

    def poison(model):
        with torch.no_grad():
            model.model.norm.weight[0] = float("nan")

    fitness = measure_candidate(registry, pico.parent.id, suites, latency=QUICK, isolate=False,
                                before_scoring=poison)
    assert fitness.has_nan is True
    assert fitness.domain_ppl is None and "non-finite" in fitness.unmeasured["domain_ppl"]
    assert fitness.to_dict()  # still plain data for the evidence packet


def test_isolated_measurement_reports_the_child_process_peak_rss(lab, parent_fitness):
    registry, pico, suites = lab
    fitness = measure_candidate(registry, pico.parent.id, suites, parent_general_ppl=10.0, latency=QUICK,
                                isolate=True)
    print(f"isolated peak RSS: {fitness.peak_rss_bytes / 2**20:.1f} MiB")
    assert 50 * 2**20 < fitness.peak_rss_bytes < 4 * 2**30
    assert "peak_rss_bytes" not in fitness.unmeasured and fitness.network_attempts == 0
    assert fitness.utility_cases == parent_fitness.utility_cases  # same cases, same model: same answers
    assert math.isclose(fitness.domain_ppl, parent_fitness.domain_ppl, rel_tol=1e-5)
    with pytest.raises(ValueError, match="isolate=False"):
        measure_candidate(registry, pico.parent.id, suites, isolate=True, before_scoring=lambda model: None)


def test_an_ordinary_error_is_a_bug_and_is_not_hidden(lab):
    registry, pico, suites = lab

    def broken(model):
        raise ZeroDivisionError("a bug, not a privacy event")

    with pytest.raises(ZeroDivisionError):
        measure_candidate(registry, pico.parent.id, suites, latency=QUICK, isolate=False, before_scoring=broken)
