"""Hard gates, the evaluation config (shipped YAML included), aggregate scores and ranking."""

from __future__ import annotations

import math
from dataclasses import fields, replace

import pytest
import yaml

from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import (
    DEFAULT_CONFIG_PATH,
    GATES,
    EvaluationConfig,
    EvaluationConfigError,
    GateResult,
    aggregate_score,
    evaluate_gates,
    gate,
    load_evaluation_config,
    parse_evaluation_config,
    rank,
)


def healthy(candidate: str = "c" * 64, **overrides) -> FitnessVector:
    """A candidate that passes every default gate."""
    values = dict(
        candidate=candidate, utility=0.6, domain_ppl=20.0, general_regression=0.5, general_ppl_ratio=1.05,
        latency_token_ms_p50=10.0, peak_rss_bytes=1 << 30, weight_bytes=200 << 20,
        network_attempts=0, data_local=True, canary_reproduced=False, has_nan=False,
    )
    return FitnessVector(**{**values, **overrides})


def failed(fitness: FitnessVector, config: EvaluationConfig | None = None) -> dict[str, GateResult]:
    return {g.name: g for g in evaluate_gates(fitness, config or EvaluationConfig()) if not g.passed}


def test_shipped_yaml_loads_and_mirrors_the_dataclass_defaults():
    raw = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text(encoding="utf-8"))
    assert set(raw) == {f.name for f in fields(EvaluationConfig)}
    assert load_evaluation_config() == EvaluationConfig()


@pytest.mark.parametrize("raw, match", [
    ({"max_general_regresion": 2.0}, "unknown key"),
    ({"no_nan": "yes"}, "no_nan"),
    ({"max_network_attempts": 0.5}, "max_network_attempts"),
    ({"alpha": 1.5}, "alpha"),
    ({"min_utility_margin": -0.1}, "min_utility_margin"),
    ({"bootstrap_resamples": 0}, "bootstrap_resamples"),
    (["no_nan"], "mapping"),
])
def test_bad_configs_are_refused_naming_the_problem(raw, match):
    with pytest.raises(EvaluationConfigError, match=match):
        parse_evaluation_config(raw)


def test_config_coerces_ints_for_floats_and_null_disables():
    config = parse_evaluation_config({"max_general_regression": 3, "max_peak_rss_bytes": None})
    assert config.max_general_regression == 3.0 and isinstance(config.max_general_regression, float)
    assert "peak-rss" not in {g.name for g in evaluate_gates(healthy(peak_rss_bytes=None), config)}


def test_a_healthy_candidate_passes_every_gate():
    results = evaluate_gates(healthy(), EvaluationConfig())
    assert results and all(g.passed for g in results), [g for g in results if not g.passed]
    # min_utility and the absolute general regression (the paper's "<2 PPL", a hypothesis now) are null by default
    assert {g.name for g in results} == set(GATES) - {"min-utility", "general-regression"}


@pytest.mark.parametrize("override, gate_name", [
    ({"general_ppl_ratio": 1.25}, "general-ppl-ratio"),
    ({"general_ppl_ratio": math.nan}, "general-ppl-ratio"),
    ({"network_attempts": 1}, "network"),
    ({"canary_reproduced": True}, "canary"),
    ({"has_nan": True}, "no-nan"),
    ({"data_local": False}, "data-local"),
    ({"peak_rss_bytes": 5 << 30}, "peak-rss"),
    ({"weight_bytes": 2 << 30}, "weight-bytes"),
    ({"latency_token_ms_p50": None}, "scored-metrics"),
    ({"domain_ppl": 0.0}, "scored-metrics"),
])
def test_each_gate_fails_on_its_own_violation(override, gate_name):
    assert set(failed(healthy(**override))) == {gate_name}


@pytest.mark.parametrize("metric, gate_name, switch", [
    ("general_ppl_ratio", "general-ppl-ratio", {"max_general_ppl_ratio": None}),
    ("network_attempts", "network", {"max_network_attempts": None}),
    ("canary_reproduced", "canary", {"canary_must_not_reproduce": False}),
    ("has_nan", "no-nan", {"no_nan": False}),
    ("data_local", "data-local", {"require_data_local": False}),
])
def test_a_missing_metric_fails_its_gate_unless_the_gate_is_disabled(metric, gate_name, switch):
    missing = healthy(**{metric: None})
    assert failed(missing)[gate_name].reason == "not measured"
    assert failed(missing, replace(EvaluationConfig(), **switch)) == {}


def test_the_absolute_general_regression_gate_still_works_when_configured():
    config = replace(EvaluationConfig(), max_general_regression=2.0)
    assert failed(healthy(general_regression=2.5), config).keys() == {"general-regression"}
    assert failed(healthy(general_regression=None), config)["general-regression"].reason == "not measured"
    assert failed(healthy(general_regression=1.5), config) == {}


def test_the_relative_general_gate_is_inclusive_at_its_bound():
    assert failed(healthy(general_ppl_ratio=1.20)) == {}
    assert failed(healthy(general_ppl_ratio=1.2001)).keys() == {"general-ppl-ratio"}


def test_min_utility_gate_when_configured():
    config = replace(EvaluationConfig(), min_utility=0.5)
    assert failed(healthy(utility=0.4), config).keys() == {"min-utility"}
    assert failed(healthy(utility=0.5), config) == {}


def test_gate_registry_rejects_duplicates_and_bad_names():
    with pytest.raises(ValueError, match="already registered"):
        gate("canary")(lambda fitness, config: None)
    with pytest.raises(ValueError, match="lower-case"):
        gate("Bad_Name")
    try:
        gate("always-fails")(lambda fitness, config: GateResult("always-fails", False, None, None, "test"))
        assert "always-fails" in failed(healthy())
    finally:
        GATES.pop("always-fails", None)


def test_aggregate_score_follows_the_documented_normalisation():
    champion = healthy("a" * 64)
    weights = EvaluationConfig().weights()
    assert aggregate_score(champion, weights, champion=champion) == pytest.approx(0.6)  # log terms are 0
    smaller = healthy(weight_bytes=100 << 20, domain_ppl=10.0)
    expected = 0.6 + 0.5 * math.log(2) + 0.05 * math.log(2)
    assert aggregate_score(smaller, weights, champion=champion) == pytest.approx(expected)
    with pytest.raises(ValueError, match="normaliser"):
        aggregate_score(smaller, {"flops_per_token": 1.0}, champion=champion)
    with pytest.raises(ValueError, match="cannot score"):
        aggregate_score(smaller, weights, champion=healthy(latency_token_ms_p50=None))


def test_rank_puts_passing_candidates_first_and_never_scores_a_failing_one():
    champion = healthy("a" * 64)
    good = healthy("b" * 64, utility=0.7)
    better = healthy("c" * 64, utility=0.8)
    # The best metrics of all, but it opened a connection: it must come last, unscored.
    cheat = healthy("d" * 64, utility=0.99, domain_ppl=2.0, weight_bytes=1 << 20, network_attempts=1)
    ranked = rank([cheat, good, better], champion, EvaluationConfig())
    assert [r.fitness.candidate[0] for r in ranked] == ["c", "b", "d"]
    assert [r.passed for r in ranked] == [True, True, False]
    assert ranked[0].score > ranked[1].score and ranked[2].score is None
    assert [g.name for g in ranked[2].gates if not g.passed] == ["network"]
