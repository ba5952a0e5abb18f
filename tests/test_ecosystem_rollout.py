"""Rollout verdicts, lifecycle bookkeeping and the trace: the rules on numbers, no models needed."""

from __future__ import annotations

from collections import Counter

import pytest

from breedlab.ecosystem.lifecycle import ChildWatch, LifecycleConfig, add_revalidation_pair, degraded, record_usage
from breedlab.ecosystem.rollout import Rollout, RolloutConfig, judge, takes_canary
from breedlab.ecosystem.trace import Phase, build_trace, snippets

CONFIG = RolloutConfig(shadow_windows=1, min_shadow_queries=8, canary_windows=1, min_canary_queries=4,
                       max_live_regression=0.05)


def _rollout(stage: str, deltas: list[float]) -> Rollout:
    rollout = Rollout("c" * 64, "code", stage=stage)
    for i, delta in enumerate(deltas):
        base = 3.0 + 0.1 * (i % 5)
        rollout.add_pair(base + delta, base)
    return rollout


def test_a_shadow_child_clearly_better_advances_and_clearly_worse_is_rejected():
    better = judge(_rollout("shadow", [-0.2 + 0.01 * i for i in range(12)]), CONFIG)
    assert better.action == "advance" and better.data["ci"][1] <= 0.05
    worse = judge(_rollout("shadow", [0.5 + 0.01 * i for i in range(12)]), CONFIG)
    assert worse.action == "reject" and "worse than the champion" in worse.reason


def test_a_shadow_verdict_waits_for_enough_pairs_and_for_a_conclusive_interval():
    assert judge(_rollout("shadow", [-0.3] * 5), CONFIG).action == "hold"
    noisy = judge(_rollout("shadow", [0.05 + (0.4 if i % 2 else -0.4) for i in range(10)]), CONFIG)
    assert noisy.action == "hold" and "not yet conclusive" in noisy.reason


def test_a_canary_that_breaks_the_live_gate_is_rolled_back_at_once():
    verdict = judge(_rollout("canary", [0.3] * 4), CONFIG)
    assert verdict.action == "rollback" and "max_live_regression" in verdict.reason
    assert judge(_rollout("canary", [0.3] * 3), CONFIG).action == "hold"  # too few queries to judge
    assert judge(_rollout("canary", [-0.1] * 4), CONFIG).action == "advance"


def test_non_finite_pairs_are_not_evidence():
    rollout = _rollout("shadow", [])
    rollout.add_pair(float("nan"), 3.0)
    rollout.add_pair(3.0, float("inf"))
    assert rollout.child_nll == [] and rollout.champion_nll == []


def test_the_canary_share_is_the_configured_one_and_stable_per_query():
    texts = [f"query number {i}" for i in range(4000)]
    share = sum(takes_canary(t, CONFIG) for t in texts) / len(texts)
    assert abs(share - CONFIG.canary_share) < 0.03
    assert [takes_canary(t, CONFIG) for t in texts[:50]] == [takes_canary(t, CONFIG) for t in texts[:50]]


def test_prune_needs_consecutive_idle_windows():
    config = LifecycleConfig(prune_min_share=0.05, prune_windows=2)
    watch = ChildWatch("c" * 64, "code", baseline_delta=0.0)
    assert not record_usage(watch, 0.01, config)
    assert not record_usage(watch, 0.30, config)  # a busy window resets the streak
    assert not record_usage(watch, 0.02, config)
    assert record_usage(watch, 0.0, config) and watch.idle_shares == [0.02, 0.0]


def test_a_child_is_degraded_only_with_enough_samples_beyond_its_baseline():
    config = LifecycleConfig(revalidate_queries=10, revalidate_min_queries=4, revalidate_tolerance=0.25)
    watch = ChildWatch("c" * 64, "code", baseline_delta=-0.2)
    for _ in range(3):
        add_revalidation_pair(watch, 3.2, 3.0, config)  # +0.2 live, 0.4 above the baseline
    assert not degraded(watch, config)  # three samples are not enough
    add_revalidation_pair(watch, 3.2, 3.0, config)
    assert degraded(watch, config)
    for _ in range(10):
        add_revalidation_pair(watch, 2.9, 3.0, config)  # the rolling window forgets the bad samples
    assert len(watch.pairs) == 10 and not degraded(watch, config)


def test_the_trace_follows_each_phase_mix_exactly_and_is_deterministic():
    pools = {d: [f"{d} snippet {i}" for i in range(50)] for d in ("general", "code", "medical")}
    phases = [Phase("general use", 2, {"general": 0.8, "code": 0.1, "medical": 0.1}),
              Phase("code rises", 3, {"general": 0.5, "code": 0.4, "medical": 0.1})]
    trace = build_trace(pools, phases, queries_per_window=30, seed=1)
    assert len(trace) == 5 and all(len(w) == 30 for w in trace)
    assert Counter(q.domain for q in trace[0]) == {"general": 24, "code": 3, "medical": 3}
    assert Counter(q.domain for q in trace[4]) == {"general": 15, "code": 12, "medical": 3}
    assert all(q.text.startswith(q.domain) for w in trace for q in w)  # a label is the snippet's true domain
    assert trace == build_trace(pools, phases, queries_per_window=30, seed=1)


def test_a_trace_refuses_a_domain_without_snippets_and_a_bad_phase():
    with pytest.raises(ValueError, match="without snippets"):
        build_trace({"code": ["x"]}, [Phase("p", 1, {"legal": 1.0})], queries_per_window=3, seed=0)
    with pytest.raises(ValueError, match="windows"):
        Phase("p", 0, {"code": 1.0})


def test_snippets_are_query_sized():
    import random

    text = "First sentence here. Second one follows! A third? " * 20
    pieces = snippets([text], min_chars=40, max_chars=120, rng=random.Random(0))
    assert pieces and all(40 <= len(p) <= 120 for p in pieces)
