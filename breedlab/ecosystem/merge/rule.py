"""The merge rule: is a merged model good enough to replace both specialists?

Step 3 of ``consider_merge`` (:mod:`breedlab.ecosystem.merge.review`). The merged model M and both
specialists are measured on both domains' frozen suites (``measure_candidate``). The rule, per
domain D with specialist S (paired on the same cases, the evaluation config's alpha, confidence,
resamples and seed):

- NLL: paired bootstrap of ``NLL_M - NLL_S`` per lm case; M is **worse**
  when the interval's low end > ``max_nll_loss`` (a loss that is real and
  larger than the tolerance; 0 makes it "significantly worse" exactly);
- utility: exact sign test on the cloze cases; M is **worse** when its
  accuracy is lower by more than ``max_utility_loss`` and p(S better) < alpha;
- an axis not measured on both sides counts as not shown, so the merge fails;

and M must pass every hard gate (``evaluation.gates``) on each domain and
cost less than the two: ``weight_bytes(M) < weight_bytes(a) + weight_bytes(b)``.
This is not ``decide()``'s champion-challenger rule (which wants the
challenger *better*): the packets say so and carry this rule's statistics.
Outcome: promote (merge), no-op (keep both) or reject (a gate failed).

The functions read only the margins ``max_nll_loss`` and ``max_utility_loss`` of the merge config
and measure nothing themselves: they judge FitnessVectors and GateResults already made.
"""

from __future__ import annotations

from typing import Any

from breedlab.ecosystem.merge.config import MergeConfig
from breedlab.evaluation.decision import Decision

NOT_COMPARED = "not compared"


def domain_verdict(specialist, merged, config: MergeConfig, evaluation) -> tuple[bool, str, dict]:
    """Step 3 on one domain: (passed, reason, statistics) for the merged model against the specialist."""
    from breedlab.evaluation.stats import paired_bootstrap, sign_test

    stats: dict[str, Any] = {"nll": None, "utility": None}
    reasons, passed = [], True
    if specialist.domain_case_nll and merged.domain_case_nll:
        boot = paired_bootstrap(specialist.domain_case_nll, merged.domain_case_nll, seed=evaluation.seed,
                                resamples=evaluation.bootstrap_resamples, confidence=evaluation.confidence)
        worse = boot.low > config.max_nll_loss  # merged - specialist: low end above the margin
        stats["nll"] = {"cases": len(merged.domain_case_nll), "mean_diff": boot.mean_diff, "ci_low": boot.low,
                        "ci_high": boot.high, "worse": worse}
        reasons.append(f"NLL merged - specialist {boot.mean_diff:+.4f} nats, {boot.confidence:.0%} CI "
                       f"[{boot.low:+.4f}, {boot.high:+.4f}]: " + (
                           "worse" if worse else "not worse") + f" (low end vs max_nll_loss {config.max_nll_loss})")
        passed = passed and not worse
    else:
        reasons.append(f"NLL {NOT_COMPARED} (no paired lm cases): not shown to be not worse")
        passed = False
    if specialist.utility_cases and merged.utility_cases:
        test = sign_test(merged.utility_cases, specialist.utility_cases)  # b = specialist: p(specialist better)
        drop = sum(specialist.utility_cases) / len(specialist.utility_cases) - sum(merged.utility_cases) / len(
            merged.utility_cases)
        worse = drop > config.max_utility_loss and test.p_b_better < evaluation.alpha
        stats["utility"] = {"cases": len(merged.utility_cases), "accuracy_drop": drop,
                            "p_specialist_better": test.p_b_better, "worse": worse}
        reasons.append(f"utility drop {drop:+.4f}, p(specialist better)={test.p_b_better:.4g}: " + (
            "worse" if worse else "not worse") + f" (max_utility_loss {config.max_utility_loss}, alpha {evaluation.alpha})")
        passed = passed and not worse
    else:
        reasons.append(f"utility {NOT_COMPARED} (no paired cloze cases): not shown to be not worse")
        passed = False
    return passed, "; ".join(reasons), stats


def merge_rule(specialist: dict, merged: dict, gates: dict, costs: dict[str, int], config: MergeConfig,
               evaluation, ensemble: dict | None = None) -> Decision:
    """Step 3 of the module docstring. ``specialist``, ``merged``: domain -> FitnessVector; ``gates``: domain
    -> the merged model's GateResults there; ``costs``: "merged", "a", "b" -> weight bytes; ``ensemble``:
    domain -> the two specialists' logit ensemble's FitnessVector (the behavioural baseline: the merged
    model must also be not significantly worse than it, at less than its cost, which is both models')."""
    statistics: dict[str, Any] = {"rule": {
        "max_nll_loss": config.max_nll_loss, "max_utility_loss": config.max_utility_loss,
        "alpha": evaluation.alpha, "confidence": evaluation.confidence,
        "resamples": evaluation.bootstrap_resamples, "seed": evaluation.seed}}
    reasons = ["merge rule (breedlab.ecosystem.merge.review), not decide()'s champion-challenger rule: the merged "
               "model must be not significantly worse than each domain's specialist, pass every gate, and cost "
               "less than keeping both"]
    failed = sorted(f"{domain}: {g.name} ({g.reason})" for domain, results in gates.items()
                    for g in results if not g.passed)
    reasons += [f"gate failed on {name}" for name in failed]
    domains_ok = True
    for domain in specialist:
        passed, why, statistics[f"domain {domain}"] = domain_verdict(specialist[domain], merged[domain], config,
                                                                     evaluation)
        reasons.append(f"{domain}: {why}")
        domains_ok = domains_ok and passed
    for domain in ensemble or {}:
        passed, why, statistics[f"ensemble {domain}"] = domain_verdict(ensemble[domain], merged[domain], config,
                                                                       evaluation)
        reasons.append(f"{domain}, against the ensemble of both: " + why.replace("specialist", "ensemble"))
        domains_ok = domains_ok and passed
    cheaper = costs["merged"] < costs["a"] + costs["b"]
    statistics["cost"] = {**costs, "cheaper": cheaper}
    reasons.append(f"cost: merged {costs['merged']:,} weight bytes vs {costs['a'] + costs['b']:,} for both (the "
                   "ensemble's cost): "
                   + ("cheaper" if cheaper else "not cheaper"))
    outcome = "reject" if failed else ("promote" if domains_ok and cheaper else "no-op")
    reasons.append("merge: one model replaces both" if outcome == "promote" else "no merge: keep both specialists")
    return Decision(outcome, reasons, statistics)
