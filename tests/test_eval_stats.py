"""Paired statistics against scipy on fixed data: exact sign/McNemar test and paired bootstrap."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as scipy_stats

from breedlab.evaluation.stats import paired_bootstrap, sign_test


def outcomes(b_wins: int, a_wins: int, both: int = 3, neither: int = 2) -> tuple[list[int], list[int]]:
    """Paired 0/1 outcomes (a = champion, b = challenger) with the given discordant table."""
    a = [0] * b_wins + [1] * a_wins + [1] * both + [0] * neither
    b = [1] * b_wins + [0] * a_wins + [1] * both + [0] * neither
    return a, b


@pytest.mark.parametrize("b_wins, a_wins", [
    (0, 1), (1, 0), (1, 1), (3, 3), (7, 2), (2, 7), (12, 5), (0, 9), (25, 10), (40, 60), (150, 120),
])
def test_sign_test_agrees_with_scipy_binomtest(b_wins, a_wins):
    a, b = outcomes(b_wins, a_wins)
    result = sign_test(a, b)
    n = b_wins + a_wins
    assert (result.discordant_b_wins, result.discordant_a_wins, result.discordant) == (b_wins, a_wins, n)
    two_sided = scipy_stats.binomtest(b_wins, n, 0.5, alternative="two-sided").pvalue
    greater = scipy_stats.binomtest(b_wins, n, 0.5, alternative="greater").pvalue
    assert result.p_value == pytest.approx(two_sided, rel=1e-9, abs=1e-15)
    assert result.p_b_better == pytest.approx(greater, rel=1e-9, abs=1e-15)


def test_sign_test_ignores_ties_and_has_no_evidence_without_discordant_pairs():
    a, b = outcomes(0, 0, both=10, neither=5)
    result = sign_test(a, b)
    assert (result.discordant, result.p_value, result.p_b_better) == (0, 1.0, 1.0)
    # Concordant pairs change nothing: the same discordant table with more ties gives the same p.
    assert sign_test(*outcomes(9, 2, both=0, neither=0)) == sign_test(*outcomes(9, 2, both=50, neither=40))


def test_sign_test_accepts_bools_and_is_exact_for_large_tables():
    a, b = outcomes(700, 560)
    result = sign_test([bool(x) for x in a], [bool(x) for x in b])
    assert result.p_b_better == pytest.approx(scipy_stats.binomtest(700, 1260, 0.5, alternative="greater").pvalue,
                                              rel=1e-9)
    assert 0 < result.p_value < 1e-3


@pytest.mark.parametrize("a, b", [([], []), ([1, 0], [1]), ([1, 2], [0, 1]), ([0.5], [1])])
def test_sign_test_refuses_bad_input(a, b):
    with pytest.raises(ValueError):
        sign_test(a, b)


def fixed_pairs(n: int = 60, shift: float = -0.2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    a = rng.normal(2.0, 1.0, n)
    return a, a + shift + rng.normal(0.0, 0.5, n)


def test_bootstrap_mean_is_numpys_mean_of_differences():
    a, b = fixed_pairs()
    result = paired_bootstrap(a.tolist(), b.tolist(), resamples=500)
    assert result.mean_diff == pytest.approx(float(np.mean(b - a)), rel=0, abs=1e-12)
    assert result.low <= result.mean_diff <= result.high and result.resamples == 500


@pytest.mark.parametrize("shift", [-0.2, 0.0, 0.35])
def test_bootstrap_interval_matches_scipy_percentile_bootstrap(shift):
    a, b = fixed_pairs(shift=shift)
    ours = paired_bootstrap(a, b, resamples=20_000, confidence=0.95, seed=3)
    reference = scipy_stats.bootstrap(
        (a, b), lambda x, y, axis=-1: np.mean(y - x, axis=axis), paired=True, vectorized=True,
        method="percentile", confidence_level=0.95, n_resamples=20_000, random_state=0,
    ).confidence_interval
    width = reference.high - reference.low
    # Two independent Monte Carlo runs: the ends agree to a few percent of the width.
    assert ours.low == pytest.approx(reference.low, abs=0.05 * width)
    assert ours.high == pytest.approx(reference.high, abs=0.05 * width)


def test_bootstrap_is_deterministic_per_seed_and_chunks_do_not_matter():
    a, b = fixed_pairs(n=3000)
    first = paired_bootstrap(a, b, resamples=2000, seed=7)
    assert first == paired_bootstrap(a, b, resamples=2000, seed=7)
    assert first != paired_bootstrap(a, b, resamples=2000, seed=8)


def test_bootstrap_excludes_zero_only_for_a_clear_difference():
    a, b = fixed_pairs(shift=-0.5)
    assert paired_bootstrap(a, b, resamples=2000).excludes_zero()
    assert not paired_bootstrap(a, a + np.random.default_rng(2).normal(0, 0.5, a.size), resamples=2000).excludes_zero()


@pytest.mark.parametrize("a, b, kwargs", [
    ([], [], {}), ([1.0, 2.0], [1.0], {}), ([1.0], [float("nan")], {}),
    ([1.0], [2.0], {"resamples": 0}), ([1.0], [2.0], {"confidence": 1.0}),
])
def test_bootstrap_refuses_bad_input(a, b, kwargs):
    with pytest.raises(ValueError):
        paired_bootstrap(a, b, **kwargs)
