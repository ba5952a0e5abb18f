"""Paired statistics for champion-challenger comparisons on the same cases.

Both tests take the champion's per-case scores as ``a`` and the challenger's as
``b``, in the same case order, so every quantity is "challenger minus
champion" (``b - a``):

- :func:`paired_bootstrap`: a percentile confidence interval for the mean of
  the per-case differences (Efron & Tibshirani 1993, ch. 13). Resampling whole
  cases keeps each pair together, which is what makes it paired.
- :func:`sign_test`: the exact McNemar test for paired binary outcomes. Only
  discordant pairs carry information; under the null each one is equally
  likely to favour either side, so the count of challenger wins is
  Binomial(n_discordant, 1/2) (McNemar 1947, in its exact binomial form).

Both are computed here with numpy and ``math.comb`` alone: scipy is only the
test suite's reference, never a runtime dependency of a decision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bootstrap index matrices are drawn in blocks of about this many entries, so
# 10k resamples of a 5k-case suite need 16 MB at a time rather than 400 MB.
BLOCK_ENTRIES = 1 << 21


@dataclass(frozen=True)
class BootstrapResult:
    """Mean of per-case differences ``b - a`` and its percentile interval."""

    mean_diff: float
    low: float
    high: float
    resamples: int
    confidence: float = 0.95

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


@dataclass(frozen=True)
class ExactTest:
    """Exact sign test on the discordant pairs of two paired binary outcomes."""

    discordant_b_wins: int
    """Cases the challenger (b) got right and the champion (a) got wrong."""
    discordant_a_wins: int
    """Cases the champion got right and the challenger got wrong."""
    p_value: float
    """Two-sided: the chance of a split at least this lopsided if neither is better."""
    p_b_better: float
    """One-sided, alternative "b is better": P(X >= b wins), X ~ Binomial(n, 1/2)."""

    @property
    def discordant(self) -> int:
        return self.discordant_b_wins + self.discordant_a_wins


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """``b - a`` per case, refusing empty, unequal-length or non-finite input."""
    left = np.asarray(a, dtype=np.float64)
    right = np.asarray(b, dtype=np.float64)
    if left.ndim != 1 or right.ndim != 1:
        raise ValueError("paired scores must be flat sequences, one number per case")
    if left.size != right.size:
        raise ValueError(f"paired scores differ in length ({left.size} vs {right.size}): not the same cases")
    if left.size == 0:
        raise ValueError("no cases to compare")
    diffs = right - left
    if not np.all(np.isfinite(diffs)):
        raise ValueError("paired scores contain NaN or infinity")
    return diffs


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    *,
    resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Percentile bootstrap interval of ``mean(b - a)``, resampling cases with replacement."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    diffs = paired_differences(a, b)
    n = diffs.size
    rng = np.random.default_rng(seed)
    means = np.empty(resamples, dtype=np.float64)
    block = max(1, BLOCK_ENTRIES // n)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        picks = rng.integers(0, n, size=(stop - start, n))  # (resamples in block, n)
        means[start:stop] = diffs[picks].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return BootstrapResult(float(diffs.mean()), float(low), float(high), resamples, confidence)


def sign_test(a_correct: Sequence[int | bool], b_correct: Sequence[int | bool]) -> ExactTest:
    """Exact two-sided McNemar (sign) test, plus the one-sided p for "b is better".

    Ties (both right or both wrong) are dropped, as McNemar's test does; with
    no discordant pair at all there is no evidence either way and both p are 1.
    """
    a_wins, b_wins = _discordant(a_correct, b_correct)
    n = a_wins + b_wins
    if n == 0:
        return ExactTest(0, 0, 1.0, 1.0)
    # Binomial(n, 1/2) is symmetric, so the outcomes at most as likely as the
    # observed one are exactly both tails beyond min(k, n - k).
    two_sided = min(1.0, 2 * _lower_tail(min(a_wins, b_wins), n))
    greater = _lower_tail(a_wins, n)  # P(X >= b_wins) = P(n - X <= a_wins), by symmetry
    return ExactTest(b_wins, a_wins, two_sided, greater)


def paired_sign_test(a_scores: Sequence[float], b_scores: Sequence[float]) -> ExactTest:
    """The exact sign test on paired scores in [0, 1] (task metrics): a case counts for the side that
    scored higher, ties are dropped. On 0/1 outcomes it is ``sign_test`` (McNemar) exactly."""
    if all(v in (0, 1) for v in [*a_scores, *b_scores]):
        return sign_test(a_scores, b_scores)
    if len(a_scores) != len(b_scores) or not a_scores:
        raise ValueError(f"paired scores differ in length or are empty ({len(a_scores)} vs {len(b_scores)})")
    a_wins = sum(a > b for a, b in zip(a_scores, b_scores))
    b_wins = sum(b > a for a, b in zip(a_scores, b_scores))
    n = a_wins + b_wins
    if n == 0:
        return ExactTest(0, 0, 1.0, 1.0)
    return ExactTest(b_wins, a_wins, min(1.0, 2 * _lower_tail(min(a_wins, b_wins), n)), _lower_tail(a_wins, n))


def _discordant(a_correct: Sequence[int | bool], b_correct: Sequence[int | bool]) -> tuple[int, int]:
    """(champion-only wins, challenger-only wins), refusing anything but paired 0/1 outcomes."""
    if len(a_correct) != len(b_correct):
        raise ValueError(f"paired outcomes differ in length ({len(a_correct)} vs {len(b_correct)}): not the same cases")
    if len(a_correct) == 0:
        raise ValueError("no cases to compare")
    a_wins = b_wins = 0
    for index, (left, right) in enumerate(zip(a_correct, b_correct, strict=True)):
        if left not in (0, 1) or right not in (0, 1):
            raise ValueError(f"case {index}: outcomes must be 0/1 (or bools), got {left!r}, {right!r}")
        a_wins += bool(left) and not right
        b_wins += bool(right) and not left
    return a_wins, b_wins


def _lower_tail(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), from exact integers with one final division."""
    # int / int is correctly rounded in Python even for huge n, so this is exact to a float.
    return sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
