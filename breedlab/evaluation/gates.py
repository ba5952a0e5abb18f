"""Hard gates first, aggregate after: which candidates may be ranked at all.

A gate is a configured invariant, registered as a pure function
``(fitness, config) -> GateResult | None`` under a unique lower-case name
(``@gate("no-nan")``); returning None means the config switched it off. A gate
whose metric was not measured FAILS with reason "not measured": evidence that
is missing can never let a candidate through (seed 000: critical conditions
are hard gates, not negative terms in a score).

Only candidates that pass every gate get an aggregate score. The score is a
weighted sum of normalised metrics, each oriented so that higher is better:

==========================  =============================================
``utility``                 cloze accuracy as is (0..1)
``domain_ppl``              ``-log(ppl / champion ppl)``
``latency_token_ms_p50``    ``-log(latency / champion latency)``
``peak_rss_bytes``          ``-log(rss / champion rss)``
``weight_bytes``            ``-log(bytes / champion bytes)``
==========================  =============================================

Log ratios make a halving worth the same as a doubling costs, whatever the
unit, and put the champion at 0 on every resource axis. Thresholds, margins,
weights and budgets are one flat :class:`EvaluationConfig`, mirrored one to
one by ``breedlab/configs/evaluation.yaml`` (see :mod:`breedlab.evaluation.gate_config`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from breedlab.evaluation.fitness import FitnessVector

# The config lives in its own module; these names stay importable from here, where callers found them.
from breedlab.evaluation.gate_config import (  # noqa: F401
    DEFAULT_CONFIG_PATH,
    EvaluationConfig,
    EvaluationConfigError,
    load_evaluation_config,
    parse_evaluation_config,
)

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@dataclass(frozen=True)
class GateResult:
    """The verdict of one gate on one candidate, with the evidence it rests on."""

    name: str
    passed: bool
    value: float | int | bool | None
    """The measured value the gate looked at (None: not measured)."""
    limit: float | int | bool | None
    """The configured bound or required value."""
    reason: str


GateFn = Callable[[FitnessVector, EvaluationConfig], "GateResult | None"]
GATES: dict[str, GateFn] = {}


def gate(name: str) -> Callable[[GateFn], GateFn]:
    """Register a gate function under ``name``; duplicate or badly formed names are refused."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"gate name {name!r} must be lower-case words joined by '-'")

    def register(fn: GateFn) -> GateFn:
        if name in GATES:
            raise ValueError(f"gate {name!r} is already registered")
        GATES[name] = fn
        return fn

    return register


def evaluate_gates(fitness: FitnessVector, config: EvaluationConfig) -> list[GateResult]:
    """Every enabled gate's verdict on ``fitness``, in registration order."""
    results = [fn(fitness, config) for fn in GATES.values()]
    return [result for result in results if result is not None]


def _bounded(name: str, value, limit, unit: str = "") -> GateResult:
    """A ``value <= limit`` gate; None or NaN can never pass."""
    if value is None:
        return GateResult(name, False, None, limit, "not measured")
    if isinstance(value, float) and math.isnan(value):
        return GateResult(name, False, value, limit, "measured as NaN")
    passed = value <= limit
    relation = "<=" if passed else ">"
    return GateResult(name, passed, value, limit, f"{value}{unit} {relation} limit {limit}{unit}")


def _required(name: str, value: bool | None, wanted: bool, what: str) -> GateResult:
    """A gate requiring a boolean metric to equal ``wanted``."""
    if value is None:
        return GateResult(name, False, None, wanted, "not measured")
    passed = value == wanted
    return GateResult(name, passed, value, wanted, f"{what}: {'yes' if value else 'no'}")


@gate("no-nan")
def no_nan(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if not config.no_nan:
        return None
    return _required("no-nan", fitness.has_nan, False, "NaN in outputs")


@gate("general-regression")
def general_regression(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.max_general_regression is None:
        return None
    return _bounded("general-regression", fitness.general_regression, config.max_general_regression, " PPL")


@gate("general-ppl-ratio")
def general_ppl_ratio(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.max_general_ppl_ratio is None:
        return None
    return _bounded("general-ppl-ratio", fitness.general_ppl_ratio, config.max_general_ppl_ratio, "x")


@gate("peak-rss")
def peak_rss(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.max_peak_rss_bytes is None:
        return None
    return _bounded("peak-rss", fitness.peak_rss_bytes, config.max_peak_rss_bytes, " B")


@gate("weight-bytes")
def weight_bytes(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.max_weight_bytes is None:
        return None
    return _bounded("weight-bytes", fitness.weight_bytes, config.max_weight_bytes, " B")


@gate("network")
def network(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.max_network_attempts is None:
        return None
    return _bounded("network", fitness.network_attempts, config.max_network_attempts, " attempts")


@gate("data-local")
def data_local(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if not config.require_data_local:
        return None
    return _required("data-local", fitness.data_local, True, "all training data local")


@gate("canary")
def canary(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if not config.canary_must_not_reproduce:
        return None
    return _required("canary", fitness.canary_reproduced, False, "planted secret reproduced")


@gate("min-utility")
def min_utility(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    if config.min_utility is None:
        return None
    if fitness.utility is None:
        return GateResult("min-utility", False, None, config.min_utility, "not measured")
    passed = fitness.utility >= config.min_utility  # False for NaN
    relation = ">=" if passed else "<"
    return GateResult("min-utility", passed, fitness.utility, config.min_utility,
                      f"{fitness.utility} {relation} minimum {config.min_utility}")


@gate("scored-metrics")
def scored_metrics(fitness: FitnessVector, config: EvaluationConfig) -> GateResult | None:
    """Every metric the aggregate weighs must be measured, finite (and positive for log ratios)."""
    needed = [name for name, weight in config.weights().items() if weight]
    bad = [name for name in needed if not _usable(name, getattr(fitness, name))]
    reason = f"not measured or unusable: {', '.join(bad)}" if bad else f"all measured: {', '.join(needed)}"
    return GateResult("scored-metrics", not bad, len(needed) - len(bad), len(needed), reason)


def _usable(name: str, value) -> bool:
    if value is None or isinstance(value, bool) or not math.isfinite(value):
        return False
    return name == "utility" or value > 0  # every other term is a log ratio


# ----- aggregate score and ranking ---------------------------------------------------

NORMALISERS: dict[str, Callable[[float, float], float]] = {
    "utility": lambda value, champion: value,
    "domain_ppl": lambda value, champion: -math.log(value / champion),
    "latency_token_ms_p50": lambda value, champion: -math.log(value / champion),
    "peak_rss_bytes": lambda value, champion: -math.log(value / champion),
    "weight_bytes": lambda value, champion: -math.log(value / champion),
}
"""Metric -> f(candidate value, champion value), oriented so that higher is better."""


def aggregate_score(fitness: FitnessVector, weights: Mapping[str, float], *, champion: FitnessVector) -> float:
    """Weighted sum of the normalised metrics (see the module docstring); higher is better.

    Call it only for candidates that passed every gate: the ``scored-metrics``
    gate is what guarantees the inputs exist. A champion lacking a weighted
    metric is an error, since nothing can be normalised against it.
    """
    total = 0.0
    for name, weight in sorted(weights.items()):
        if name not in NORMALISERS:
            raise ValueError(f"no normaliser for metric {name!r}; known: {', '.join(NORMALISERS)}")
        if not weight:
            continue
        for vector in (fitness, champion):
            if not _usable(name, getattr(vector, name)):
                raise ValueError(f"{vector.candidate[:12]}: {name} is {getattr(vector, name)!r}; cannot score")
        total += weight * NORMALISERS[name](getattr(fitness, name), getattr(champion, name))
    return total


@dataclass(frozen=True)
class Ranked:
    """A candidate's place: its gates, whether all passed, and its score (None when any failed)."""

    fitness: FitnessVector
    gates: list[GateResult]
    passed: bool
    score: float | None


def rank(candidates: list[FitnessVector], champion: FitnessVector, config: EvaluationConfig) -> list[Ranked]:
    """Passing candidates by descending score, then every failing one (score None) by id."""
    passing, failing = [], []
    for fitness in candidates:
        results = evaluate_gates(fitness, config)
        if all(result.passed for result in results):
            score = aggregate_score(fitness, config.weights(), champion=champion)
            passing.append(Ranked(fitness, results, True, score))
        else:
            failing.append(Ranked(fitness, results, False, None))
    # Ties broken by id so that the order, and any packet built from it, is deterministic.
    passing.sort(key=lambda r: (-r.score, r.fitness.candidate))
    failing.sort(key=lambda r: r.fitness.candidate)
    return passing + failing
