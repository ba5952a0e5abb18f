"""Champion-challenger decisions, population selection and budgets.

The rule :func:`decide` applies, in order (every threshold is a field of
:class:`~breedlab.evaluation.gates.EvaluationConfig`):

1. **Reject** if the challenger fails any hard gate or breaks a budget; the
   reasons name each failed gate and budget. Nothing else is looked at.
2. Compare on the **same cases**. Suites of the same kind must have the same
   id on both sides and the per-case lists the same length, else ValueError:
   a comparison across different suites is a bug, not a result.
3. Judge each axis that both sides measured (p = one-sided sign-test p):

   - *utility* (``utility_cases``, exact McNemar/sign test): **better** when
     ``mean(challenger) - mean(champion) >= min_utility_margin`` and
     ``p(challenger better) < alpha``; **worse** when the challenger's
     accuracy is lower and ``p(champion better) < alpha``.
   - *domain NLL* (``domain_case_nll``, paired bootstrap of challenger minus
     champion NLL): **better** when the mean NLL improvement is
     ``>= min_nll_margin`` and the ``confidence`` interval of the difference
     lies wholly below 0; **worse** when it lies wholly above 0.

4. **Promote** (rule *superiority*) when at least one axis is better and no
   axis is worse: a practically large gain that is not chance, bought with no
   significant loss elsewhere (general retention, memory and privacy are
   gates already).
5. **Promote** (rule *non-inferiority*, :mod:`.noninferiority`) when the
   challenger is within pre-declared margins of the champion on both quality
   axes (one-sided bounds at 1 - alpha) and its latency per token is lower by
   at least ``min_latency_saving``: as good, and measurably cheaper.
6. Otherwise **no-op**, with one reason per axis: worse, equal, better by
   less than the margin, not significant, or not compared at all. No-op is the
   default outcome: the champion stays unless the evidence says otherwise.

:func:`select_population` keeps seed 001's four roles: the champion, the
useful specialist, a diverse challenger, and no-op when nothing earns a place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import EvaluationConfig, evaluate_gates, rank
from breedlab.evaluation.noninferiority import non_inferior_and_cheaper
from breedlab.evaluation.stats import paired_bootstrap, paired_sign_test

# Pareto objectives for the diverse challenger: (metric, +1 higher is better / -1 lower is better).
OBJECTIVES = (
    ("utility", 1), ("domain_ppl", -1), ("latency_token_ms_p50", -1),
    ("peak_rss_bytes", -1), ("weight_bytes", -1),
)


@dataclass(frozen=True)
class Decision:
    """promote / reject / no-op, why, and the test statistics it rests on."""

    outcome: str
    reasons: list[str]
    statistics: dict = field(default_factory=dict)


def decide(champion: FitnessVector, challenger: FitnessVector, config: EvaluationConfig, *,
           budget_problems: Sequence[str] = ()) -> Decision:
    """Apply the rule in the module docstring to one challenger against the champion."""
    rule = {key: getattr(config, key) for key in
            ("min_utility_margin", "min_nll_margin", "alpha", "confidence", "bootstrap_resamples", "seed",
             "noninferior_nll_margin", "noninferior_utility_margin", "min_latency_saving")}
    failed = [g for g in evaluate_gates(challenger, config) if not g.passed]
    if failed or budget_problems:
        reasons = [f"gate {g.name} failed: {g.reason}" for g in failed]
        reasons += [f"budget: {problem}" for problem in budget_problems]
        return Decision("reject", reasons, {"rule": rule, "failed_gates": [g.name for g in failed]})
    _check_same_suites(champion, challenger)
    utility = _utility_axis(champion, challenger, config)
    nll = _nll_axis(champion, challenger, config)
    verdicts = [utility[0], nll[0]]
    statistics = {"rule": rule, "utility": utility[2], "domain_nll": nll[2]}
    reasons = [utility[1], nll[1]]
    if "better" in verdicts and "worse" not in verdicts:
        return Decision("promote", [*reasons, "promote (rule: superiority)"],
                        {**statistics, "rule_fired": "superiority"})
    cheaper = non_inferior_and_cheaper(champion, challenger, config)
    reasons += cheaper.reasons
    statistics["non_inferiority"] = cheaper.statistics
    if cheaper.holds:
        return Decision("promote", [*reasons, "promote (rule: non-inferiority): as good within the margins, "
                                              "and cheaper"], {**statistics, "rule_fired": "non-inferiority"})
    if "worse" in verdicts:
        reasons.append("no-op: significantly worse on at least one axis")
    else:
        reasons.append("no-op: no axis is better by the margin with significance, "
                       "and the challenger is not both non-inferior and cheaper")
    return Decision("no-op", reasons, statistics)


def _check_same_suites(champion: FitnessVector, challenger: FitnessVector) -> None:
    for kind in sorted(set(champion.suites) & set(challenger.suites)):
        if champion.suites[kind] != challenger.suites[kind]:
            raise ValueError(f"{kind} suite differs ({champion.suites[kind][:12]} vs "
                             f"{challenger.suites[kind][:12]}): paired tests need the same cases")
    for name in ("utility_cases", "domain_case_nll"):
        left, right = getattr(champion, name), getattr(challenger, name)
        if left and right and len(left) != len(right):
            raise ValueError(f"{name} differ in length ({len(left)} vs {len(right)}): not the same suite")


def _utility_axis(champion: FitnessVector, challenger: FitnessVector,
                  config: EvaluationConfig) -> tuple[str, str, dict | None]:
    """(verdict, reason, statistics) for utility (cloze accuracy, or a task metric per case) via the exact
    sign test."""
    a, b = champion.utility_cases, challenger.utility_cases
    if not a or not b:
        return "not compared", "utility: not compared (no paired cloze cases on both sides)", None
    test, reverse = paired_sign_test(a, b), paired_sign_test(b, a)  # McNemar on 0/1 cloze cases
    gain = sum(b) / len(b) - sum(a) / len(a)
    stats = {
        "cases": len(a), "champion_accuracy": sum(a) / len(a), "challenger_accuracy": sum(b) / len(b),
        "difference": gain, "discordant_challenger_wins": test.discordant_b_wins,
        "discordant_champion_wins": test.discordant_a_wins, "p_two_sided": test.p_value,
        "p_challenger_better": test.p_b_better, "p_champion_better": reverse.p_b_better,
    }
    head = (f"utility: {gain:+.4f} ({stats['champion_accuracy']:.4f} -> {stats['challenger_accuracy']:.4f},"
            f" {test.discordant_b_wins}:{test.discordant_a_wins} discordant, p(better)={test.p_b_better:.4g})")
    if gain < 0 and reverse.p_b_better < config.alpha:
        return "worse", f"{head}: significantly worse (p={reverse.p_b_better:.4g} < {config.alpha})", stats
    if gain < config.min_utility_margin:
        return "not better", f"{head}: gain below the margin {config.min_utility_margin}", stats
    if test.p_b_better >= config.alpha:
        return "not better", f"{head}: not significant (alpha {config.alpha})", stats
    return "better", f"{head}: better by the margin {config.min_utility_margin}, significant", stats


def _nll_axis(champion: FitnessVector, challenger: FitnessVector,
              config: EvaluationConfig) -> tuple[str, str, dict | None]:
    """(verdict, reason, statistics) for per-case domain NLL via the paired bootstrap."""
    a, b = champion.domain_case_nll, challenger.domain_case_nll
    if not a or not b:
        return "not compared", "domain NLL: not compared (no paired lm cases on both sides)", None
    boot = paired_bootstrap(a, b, resamples=config.bootstrap_resamples,
                            confidence=config.confidence, seed=config.seed)
    gain = -boot.mean_diff  # NLL: lower is better, so improvement = champion - challenger
    stats = {
        "cases": len(a), "mean_diff": boot.mean_diff, "ci_low": boot.low, "ci_high": boot.high,
        "improvement": gain, "confidence": boot.confidence, "resamples": boot.resamples,
    }
    head = (f"domain NLL: challenger - champion {boot.mean_diff:+.4f} nats, "
            f"{boot.confidence:.0%} CI [{boot.low:+.4f}, {boot.high:+.4f}]")
    if boot.low > 0:
        return "worse", f"{head}: significantly worse", stats
    if gain < config.min_nll_margin:
        return "not better", f"{head}: improvement below the margin {config.min_nll_margin}", stats
    if boot.high >= 0:
        return "not better", f"{head}: interval includes 0", stats
    return "better", f"{head}: better by the margin {config.min_nll_margin}, interval excludes 0", stats


def check_budget(candidate_fitness: FitnessVector, *, active_children_in_niche: int, max_children_per_niche: int,
                 total_weight_bytes_active: int, max_total_weight_bytes: int) -> list[str]:
    """Problems keeping this candidate would cause (empty: it fits).

    The counts are of what stays active besides this candidate: a challenger
    that would replace an active child should not count that child.
    """
    problems = []
    if active_children_in_niche + 1 > max_children_per_niche:
        problems.append(f"the niche already holds {active_children_in_niche} active children; "
                        f"the cap is {max_children_per_niche}")
    weight = candidate_fitness.weight_bytes
    if weight is None:
        problems.append("weight_bytes not measured: cannot show the total weight budget holds")
    elif total_weight_bytes_active + weight > max_total_weight_bytes:
        problems.append(f"active weights would total {total_weight_bytes_active + weight} bytes; "
                        f"the cap is {max_total_weight_bytes}")
    return problems


@dataclass(frozen=True)
class Selection:
    """The population to keep: artifact ids by role, whether nothing earned promotion, and why."""

    champion: str
    useful_specialist: str | None
    diverse_challenger: str | None
    no_op: bool
    reasons: list[str]
    outcomes: dict[str, str] = field(default_factory=dict)
    """Candidate id -> its decision against the champion (promote / reject / no-op)."""


def select_population(champion: FitnessVector, candidates: list[FitnessVector], config: EvaluationConfig, *,
                      operators: Mapping[str, str] | None = None,
                      budget_problems: Mapping[str, Sequence[str]] | None = None) -> Selection:
    """Seed 001's SELECT_POPULATION(keep: [champion, useful_specialist, diverse_challenger, no_op]).

    The useful specialist is the best-scoring candidate that ``decide``
    promotes. The diverse challenger is the best-scoring other passing
    candidate that nothing (champion included) strictly dominates and, when
    there is a specialist, whose operator (``operators``: id -> operator or
    kind, e.g. ``quantize``) differs from the specialist's.
    """
    budget_problems = budget_problems or {}
    ranked = rank(candidates, champion, config)
    decisions = {r.fitness.candidate: decide(champion, r.fitness, config,
                                             budget_problems=budget_problems.get(r.fitness.candidate, ()))
                 for r in ranked}
    outcomes = {cid: d.outcome for cid, d in decisions.items()}
    kept = [r.fitness for r in ranked if r.passed and outcomes[r.fitness.candidate] != "reject"]
    specialist = next((f for f in kept if outcomes[f.candidate] == "promote"), None)
    diverse, why = _diverse(champion, kept, specialist, operators)
    if specialist is None:
        reasons = ["no-op: no candidate earned promotion; the champion stays"]
    else:
        reasons = [f"useful specialist: {specialist.candidate[:12]} (best-scoring promoted candidate)"]
    reasons.append(why)
    reasons += [f"{cid[:12]}: {d.outcome}: {'; '.join(d.reasons)}" for cid, d in decisions.items()]
    return Selection(champion.candidate, specialist and specialist.candidate,
                     diverse and diverse.candidate, specialist is None, reasons, outcomes)


def _diverse(champion: FitnessVector, kept: list[FitnessVector], specialist: FitnessVector | None,
             operators: Mapping[str, str] | None) -> tuple[FitnessVector | None, str]:
    """The diverse challenger (or None) and the reason for the choice."""
    if specialist is not None and operators is None:
        return None, "diverse challenger: none (operators not given, so kinds cannot be told apart)"
    taken = operators.get(specialist.candidate) if specialist is not None else None
    for fitness in kept:  # already in descending score order
        if specialist is not None:
            operator = operators.get(fitness.candidate)
            # An unknown operator on either side cannot be shown to differ, so it does not count.
            if fitness is specialist or operator is None or taken is None or operator == taken:
                continue
        rivals = [champion, *(other for other in kept if other is not fitness)]
        if not any(dominates(rival, fitness) for rival in rivals):
            return fitness, f"diverse challenger: {fitness.candidate[:12]} (best-scoring non-dominated alternative)"
    return None, "diverse challenger: none (every alternative is dominated or of the specialist's operator)"


def dominates(left: FitnessVector, right: FitnessVector) -> bool:
    """Whether ``left`` is at least as good as ``right`` on every shared objective and better on one."""
    pairs = [(sign * getattr(left, name), sign * getattr(right, name)) for name, sign in OBJECTIVES
             if getattr(left, name) is not None and getattr(right, name) is not None]
    return bool(pairs) and all(x >= y for x, y in pairs) and any(x > y for x, y in pairs)
