"""Duplicate detection (issue 15): indistinguishable on every paired case of the same suites, and not
smaller, is a duplicate; a smaller copy (a quantization) is not."""

from __future__ import annotations

from breedlab.evaluation.duplicates import duplicate_of, indistinguishable
from breedlab.evaluation.fitness import FitnessVector

SUITES = {"lm": "s-lm", "cloze": "s-cloze"}


def vector(name, nll, correct, weight_bytes=1000, suites=SUITES):
    return FitnessVector(candidate=name, suites=dict(suites), domain_case_nll=list(nll), utility_cases=list(correct),
                         weight_bytes=weight_bytes)


def test_a_candidate_within_tolerance_on_every_case_and_no_smaller_is_a_duplicate():
    active = vector("active", [1.0, 2.0, 3.0], [1, 0, 1])
    copy = vector("copy", [1.0004, 1.9996, 3.0], [1, 0, 1])
    found = duplicate_of(copy, {"active": active}, tolerance=1e-3)
    assert found is not None and found[0] == "active" and "lm: 3 cases" in found[1]


def test_one_case_apart_or_one_answer_different_is_not_a_duplicate():
    active = vector("active", [1.0, 2.0, 3.0], [1, 0, 1])
    assert indistinguishable(vector("c", [1.0, 2.0, 3.01], [1, 0, 1]), active, 1e-3) is None
    assert indistinguishable(vector("c", [1.0, 2.0, 3.0], [1, 1, 1]), active, 1e-3) is None


def test_a_smaller_copy_or_one_on_other_suites_is_not_a_duplicate():
    active = vector("active", [1.0, 2.0, 3.0], [1, 0, 1])
    assert duplicate_of(vector("fp16", [1.0, 2.0, 3.0], [1, 0, 1], weight_bytes=500), {"active": active}, 1e-3) is None
    other = vector("elsewhere", [1.0, 2.0, 3.0], [1, 0, 1], suites={"lm": "x", "cloze": "y"})
    assert duplicate_of(other, {"active": active}, 1e-3) is None
    assert duplicate_of(active, {"active": active}, 1e-3) is None  # never a duplicate of itself
