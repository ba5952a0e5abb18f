"""Champion-challenger decisions, budgets and population selection on hand-built fitness vectors."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from breedlab.evaluation.decision import check_budget, decide, dominates, select_population
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import EvaluationConfig, aggregate_score

CONFIG = replace(EvaluationConfig(), bootstrap_resamples=2000)  # enough for clear-cut fixtures, fast
SUITES = {"cloze": "1" * 64, "lm": "2" * 64}
BASE_NLL = np.random.default_rng(0).uniform(1.5, 3.5, 120)


def vector(candidate: str, correct: int = 120, cases: int = 200, nll_shift: float = 0.0, **overrides) -> FitnessVector:
    """A gate-passing vector: the first ``correct`` cloze cases right, per-case NLL shifted from a base."""
    noise = np.random.default_rng(len(candidate) + ord(candidate[0])).normal(0, 0.02, BASE_NLL.size)
    values = dict(
        candidate=candidate, suites=dict(SUITES), utility=correct / cases,
        utility_cases=[1] * correct + [0] * (cases - correct),
        domain_case_nll=(BASE_NLL + nll_shift + (noise if nll_shift else 0)).tolist(),
        domain_ppl=float(np.exp(BASE_NLL.mean() + nll_shift)), general_regression=0.5, general_ppl_ratio=1.01,
        latency_token_ms_p50=10.0, peak_rss_bytes=1 << 30, weight_bytes=500 << 20,
        network_attempts=0, data_local=True, canary_reproduced=False, has_nan=False,
    )
    return FitnessVector(**{**values, **overrides})


CHAMPION = vector("a" * 64)


def test_a_clearly_better_challenger_is_promoted():
    decision = decide(CHAMPION, vector("b" * 64, correct=140, nll_shift=-0.1), CONFIG)
    assert decision.outcome == "promote", decision.reasons
    utility = decision.statistics["utility"]
    assert (utility["discordant_challenger_wins"], utility["discordant_champion_wins"]) == (20, 0)
    assert utility["p_challenger_better"] < 1e-5 and utility["difference"] == pytest.approx(0.1)
    assert decision.statistics["domain_nll"]["ci_high"] < 0


@pytest.mark.parametrize("challenger, why", [
    (vector("b" * 64, correct=100, nll_shift=0.1), "significantly worse"),
    (vector("b" * 64), "below the margin"),  # equal
    (vector("b" * 64, correct=123), "below the margin"),  # +0.015 < 0.02
    (vector("b" * 64, correct=1230, cases=2000, domain_case_nll=[]), "below the margin"),  # significant, too small
    (vector("b" * 64, correct=32, cases=50, domain_case_nll=[]), "not significant"),  # +0.04, 2:0 discordant
    (vector("b" * 64, nll_shift=-0.005, utility_cases=[]), "below the margin"),
])
def test_worse_equal_or_marginal_challengers_are_no_op(challenger, why):
    champion = vector("a" * 64, cases=len(challenger.utility_cases) or 200,
                      correct=int(0.6 * (len(challenger.utility_cases) or 200)))
    decision = decide(champion, challenger, CONFIG)
    assert decision.outcome == "no-op"
    assert any(why in reason for reason in decision.reasons), decision.reasons
    assert decision.reasons[-1].startswith("no-op")


def test_a_gain_on_one_axis_does_not_excuse_a_significant_loss_on_the_other():
    decision = decide(CHAMPION, vector("b" * 64, correct=150, nll_shift=0.2), CONFIG)
    assert decision.outcome == "no-op" and "significantly worse" in decision.reasons[1]


FAST = 6.0  # ms per token: 0.6x the champion's 10.0, inside the 20% cost margin


def test_a_cheaper_non_inferior_challenger_is_promoted_by_the_non_inferiority_rule():
    challenger = vector("b" * 64, correct=119, nll_shift=0.01, latency_token_ms_p50=FAST)
    decision = decide(CHAMPION, challenger, CONFIG)
    assert decision.outcome == "promote", decision.reasons
    assert decision.statistics["rule_fired"] == "non-inferiority"
    assert "rule: non-inferiority" in decision.reasons[-1]
    bounds = decision.statistics["non_inferiority"]
    assert 0.01 < bounds["nll"]["upper_bound"] <= CONFIG.noninferior_nll_margin
    assert bounds["utility"]["lower_bound"] >= -CONFIG.noninferior_utility_margin
    assert bounds["cost"]["latency_ratio"] == pytest.approx(0.6)


def test_a_better_challenger_is_promoted_by_superiority_even_when_cheaper():
    decision = decide(CHAMPION, vector("b" * 64, correct=140, nll_shift=-0.1, latency_token_ms_p50=FAST), CONFIG)
    assert decision.outcome == "promote" and decision.statistics["rule_fired"] == "superiority"


@pytest.mark.parametrize("challenger, why", [
    # cheaper, but the NLL increase is significant and beyond the 0.05 margin
    (vector("b" * 64, nll_shift=0.08, latency_token_ms_p50=FAST), "> margin 0.05"),
    # cheaper, but 12 of 200 cloze cases lost: the lower bound falls below -0.03
    (vector("b" * 64, correct=108, latency_token_ms_p50=FAST), "< -0.03"),
    # equal quality, only 10% cheaper: not cheaper by the 20% margin
    (vector("b" * 64, latency_token_ms_p50=9.0), "needs <= 0.80x"),
    # equal in every way
    (vector("b" * 64), "needs <= 0.80x"),
])
def test_cheaper_but_worse_or_equal_but_not_cheaper_is_no_op(challenger, why):
    decision = decide(CHAMPION, challenger, CONFIG)
    assert decision.outcome == "no-op", decision.reasons
    assert any(why in reason for reason in decision.reasons), decision.reasons


def test_a_cheaper_child_over_the_relative_general_gate_is_rejected():
    challenger = vector("b" * 64, latency_token_ms_p50=FAST, general_ppl_ratio=1.25)
    decision = decide(CHAMPION, challenger, CONFIG)
    assert decision.outcome == "reject"
    assert any("general-ppl-ratio" in reason and "1.25x > limit 1.2x" in reason for reason in decision.reasons)
    assert decide(CHAMPION, replace(challenger, general_ppl_ratio=1.19), CONFIG).outcome == "promote"


def test_no_paired_evidence_is_no_op():
    decision = decide(CHAMPION, vector("b" * 64, utility_cases=[], domain_case_nll=[]), CONFIG)
    assert decision.outcome == "no-op" and "not compared" in decision.reasons[0]


@pytest.mark.parametrize("override, gate_name", [
    ({"general_ppl_ratio": 1.5}, "general-ppl-ratio"),
    ({"network_attempts": 1}, "network"),
    ({"canary_reproduced": True}, "canary"),
])
def test_a_gate_failure_is_rejected_even_with_the_best_aggregate(override, gate_name):
    best = vector("b" * 64, correct=199, nll_shift=-1.0, weight_bytes=10 << 20, **override)
    others = vector("c" * 64, correct=130)
    assert aggregate_score(best, CONFIG.weights(), champion=CHAMPION) > aggregate_score(
        others, CONFIG.weights(), champion=CHAMPION)
    decision = decide(CHAMPION, best, CONFIG)
    assert decision.outcome == "reject"
    assert decision.reasons == [r for r in decision.reasons if r.startswith(f"gate {gate_name} failed")]


def test_paired_tests_refuse_different_cases():
    with pytest.raises(ValueError, match="same"):
        decide(CHAMPION, vector("b" * 64, correct=140, cases=201), CONFIG)
    with pytest.raises(ValueError, match="suite differs"):
        decide(CHAMPION, vector("b" * 64, suites={**SUITES, "lm": "3" * 64}), CONFIG)


def test_budget_overflow_is_refused_with_the_reason():
    challenger = vector("b" * 64, correct=140, nll_shift=-0.1, weight_bytes=600)
    fits = dict(active_children_in_niche=1, max_children_per_niche=3, total_weight_bytes_active=1000,
                max_total_weight_bytes=2000)
    assert check_budget(challenger, **fits) == []
    problems = check_budget(challenger, **{**fits, "active_children_in_niche": 3, "total_weight_bytes_active": 1500})
    assert len(problems) == 2 and "cap is 3" in problems[0] and "cap is 2000" in problems[1]
    assert "not measured" in check_budget(replace(challenger, weight_bytes=None), **fits)[0]
    decision = decide(CHAMPION, challenger, CONFIG, budget_problems=problems)
    assert decision.outcome == "reject" and decision.reasons == [f"budget: {p}" for p in problems]


def test_select_population_keeps_specialist_and_a_diverse_challenger():
    specialist = vector("b" * 64, correct=150, nll_shift=-0.15)
    runner_up = vector("c" * 64, correct=140, nll_shift=-0.1)  # same operator as the specialist
    quantized = vector("d" * 64, correct=119, weight_bytes=130 << 20, peak_rss_bytes=400 << 20)
    dominated = vector("e" * 64, correct=110, weight_bytes=600 << 20)  # the champion beats it everywhere
    cheat = vector("f" * 64, correct=199, network_attempts=2)
    operators = {"b" * 64: "cmg", "c" * 64: "cmg", "d" * 64: "quantize", "e" * 64: "quantize", "f" * 64: "cmg"}
    selection = select_population(CHAMPION, [dominated, quantized, cheat, runner_up, specialist], CONFIG,
                                  operators=operators)
    assert selection.champion == "a" * 64 and not selection.no_op
    assert selection.useful_specialist == "b" * 64 and selection.diverse_challenger == "d" * 64
    assert selection.outcomes == {"b" * 64: "promote", "c" * 64: "promote", "d" * 64: "no-op",
                                  "e" * 64: "no-op", "f" * 64: "reject"}
    assert dominates(CHAMPION, dominated) and not dominates(CHAMPION, quantized)


def test_select_population_is_no_op_when_nothing_passes_or_earns_promotion():
    failing = [vector("b" * 64, correct=190, canary_reproduced=True), vector("c" * 64, has_nan=True)]
    selection = select_population(CHAMPION, failing, CONFIG)
    assert selection.no_op and selection.useful_specialist is None and selection.diverse_challenger is None
    assert set(selection.outcomes.values()) == {"reject"}
    marginal = select_population(CHAMPION, [vector("d" * 64, correct=121)], CONFIG)
    assert marginal.no_op and marginal.useful_specialist is None
    assert any(reason.startswith("no-op") for reason in marginal.reasons)


def test_select_population_without_operators_names_no_diverse_challenger_next_to_a_specialist():
    selection = select_population(CHAMPION, [vector("b" * 64, correct=150), vector("d" * 64, correct=119,
                                  weight_bytes=130 << 20)], CONFIG)
    assert selection.useful_specialist == "b" * 64 and selection.diverse_challenger is None
    assert any("operators not given" in reason for reason in selection.reasons)
