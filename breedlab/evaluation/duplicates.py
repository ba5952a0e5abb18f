"""Duplicate detection: a candidate that behaves exactly like a model already in play adds nothing.

Two fitness vectors measured on the same frozen suites are *indistinguishable* when every paired case
score differs by at most ``EvaluationConfig.duplicate_tolerance``: each lm case's NLL and each cloze or
task case's score. A candidate indistinguishable from an active model (or from a candidate judged
before it in the same run) is refused as a duplicate unless it is smaller: a quantized copy that
behaves the same at fewer weight bytes is exactly what the non-inferiority rule exists to promote.
"""

from __future__ import annotations

from breedlab.evaluation.fitness import FitnessVector

PAIRED = (("lm", "domain_case_nll"), ("cloze", "utility_cases"), ("task", "utility_cases"))


def indistinguishable(a: FitnessVector, b: FitnessVector, tolerance: float) -> str | None:
    """How ``a`` and ``b`` match on every shared suite, or None when some case tells them apart."""
    compared = []
    for kind, field in PAIRED:
        if kind not in a.suites or a.suites.get(kind) != b.suites.get(kind):
            continue
        left, right = getattr(a, field), getattr(b, field)
        if not left or len(left) != len(right):
            return None
        gap = max(abs(x - y) for x, y in zip(left, right, strict=True))
        if gap > tolerance:
            return None
        compared.append(f"{kind}: {len(left)} cases, largest difference {gap:.2g}")
    return "; ".join(compared) or None


def duplicate_of(candidate: FitnessVector, others: dict[str, FitnessVector], tolerance: float) -> tuple[str, str] | None:
    """(the model it duplicates, how) for the first match among ``others`` that it is not smaller than."""
    for other_id, other in others.items():
        if other_id == candidate.candidate:
            continue
        how = indistinguishable(candidate, other, tolerance)
        smaller = (candidate.weight_bytes or 0) < (other.weight_bytes or 0)
        if how and not smaller:
            return other_id, how
    return None
