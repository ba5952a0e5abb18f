"""The scorer registry: the only code allowed to turn a frozen suite into numbers.

A suite names its scorer (name + version) and the evaluator looks that name up
here; a suite naming an unknown scorer, a version that is not registered, or a
scorer made for another kind of suite is refused. Scorers are plain decorated
functions (``@scorer("cloze-loglik", version=1, kinds=("cloze",))``) and the
table rejects a second registration of the same name and version, so nothing
imported later (a candidate's code included) can swap one out.

A scorer is ``fn(model, tokenizer, cases, settings) -> SuiteResult``: it sees
the model under test and the suite's frozen cases and settings, nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{1,63}$")


class SuiteRefused(Exception):
    """The evaluator will not run this suite (tampered, unknown scorer, wrong kind ...)."""


class UnknownScorer(SuiteRefused):
    """A suite names a scorer (or a version of one) that is not registered for its kind."""


@dataclass
class SuiteResult:
    """What one scorer measured on one suite: totals and the per-case numbers for paired tests."""

    cases: int
    accuracy: float
    """lm / retention: next-token accuracy; cloze: share of cases whose true continuation won."""
    perplexity: float | None = None
    """exp(mean next-token NLL) over every scored position (lm / retention only)."""
    case_scores: list[float] = field(default_factory=list)
    """lm / retention: mean NLL per case (nats per token); cloze: 1.0 or 0.0 per case."""
    nonfinite: bool = False
    """A NaN or infinite logit (or NLL) appeared while scoring."""


ScorerFn = Callable[[Any, Any, list[dict], dict[str, Any]], SuiteResult]


@dataclass(frozen=True)
class Scorer:
    name: str
    version: int
    kinds: tuple[str, ...]
    """Suite kinds this scorer may score (a cloze scorer must not score an lm suite)."""
    fn: ScorerFn


_SCORERS: dict[tuple[str, int], Scorer] = {}


def scorer(name: str, *, version: int, kinds: tuple[str, ...]) -> Callable[[ScorerFn], ScorerFn]:
    """Register ``fn`` as scorer ``name`` at ``version``; a duplicate or malformed name raises."""
    if not NAME_PATTERN.match(name):
        raise ValueError(f"scorer name {name!r} must be lower-case letters, digits and '-'")
    if not isinstance(version, int) or version < 1:
        raise ValueError(f"scorer {name!r}: version must be a positive int, got {version!r}")

    def register(fn: ScorerFn) -> ScorerFn:
        key = (name, version)
        if key in _SCORERS:
            raise ValueError(f"scorer {name!r} version {version} is already registered; bump the version")
        _SCORERS[key] = Scorer(name, version, tuple(kinds), fn)
        return fn

    return register


def get_scorer(name: str, version: int, kind: str) -> Scorer:
    """The registered scorer for a suite of ``kind``, or UnknownScorer saying why not."""
    found = _SCORERS.get((name, version))
    if found is None:
        known = ", ".join(f"{n} v{v}" for n, v in sorted(_SCORERS)) or "none"
        raise UnknownScorer(f"no scorer {name!r} version {version!r} is registered (known: {known})")
    if kind not in found.kinds:
        raise UnknownScorer(f"scorer {name!r} v{version} scores {', '.join(found.kinds)} suites, not {kind!r}")
    return found


def registered_scorers() -> list[tuple[str, int]]:
    """(name, version) of every registered scorer, sorted."""
    return sorted(_SCORERS)
