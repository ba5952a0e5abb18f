"""The non-inferiority rule: a challenger as good as the champion within declared margins, and cheaper.

Superiority (``decision.decide``'s first rule) can never promote a compact
child that matches its parent at half the cost: such a child is *equal*, not
better. Clinical trials face the same question and answer it with a
non-inferiority test (ICH E9, section 3.3.2): fix a margin before looking,
then show with a one-sided confidence bound that the loss is smaller than it.

Here, at level 1 - alpha (95% by default), on the same paired cases:

- domain NLL: the upper bound of mean(challenger - champion) per-case NLL
  is at most ``noninferior_nll_margin`` nats/token;
- utility: the lower bound of mean(challenger - champion) cloze accuracy is
  at least ``-noninferior_utility_margin``;
- cost: p50 latency per token is at most ``1 - min_latency_saving`` of the
  champion's, measured side by side in the same run.

One-sided bounds at 1 - alpha are the ends of the paired bootstrap's
two-sided interval at confidence 1 - 2 * alpha. Both quality axes must have
been measured: missing evidence never passes.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gate_config import EvaluationConfig
from breedlab.evaluation.stats import paired_bootstrap


@dataclass(frozen=True)
class NonInferiority:
    """Whether the rule holds, one reason per condition, and the bounds it rests on."""

    holds: bool
    reasons: list[str]
    statistics: dict


def _bound(a, b, config: EvaluationConfig):
    return paired_bootstrap(a, b, resamples=config.bootstrap_resamples, confidence=1 - 2 * config.alpha,
                            seed=config.seed)


def _quality(name: str, a, b, config: EvaluationConfig, *, margin: float, higher_is_worse: bool):
    """(holds, reason, statistics) for one paired quality axis.

    ``higher_is_worse`` (NLL): the upper bound of mean(b - a) must be <= margin; otherwise (utility)
    the lower bound must be >= -margin.
    """
    if not a or not b:
        return False, f"non-inferior {name}: not measured on both sides", {}
    boot = _bound([float(x) for x in a], [float(x) for x in b], config)
    bound = boot.high if higher_is_worse else boot.low
    ok = bound <= margin if higher_is_worse else bound >= -margin
    side, limit = ("upper", f"margin {margin}") if higher_is_worse else ("lower", f"-{margin}")
    relation = ("<=" if ok else ">") if higher_is_worse else (">=" if ok else "<")
    return ok, (f"non-inferior {name}: difference {boot.mean_diff:+.4f}, {side} {1 - config.alpha:.0%} bound "
                f"{bound:+.4f} {relation} {limit}"), \
        {"mean_difference": boot.mean_diff, f"{side}_bound": bound, "margin": margin}


def _cheaper(champion: FitnessVector, challenger: FitnessVector,
             config: EvaluationConfig) -> tuple[bool, str, dict]:
    old, new = champion.latency_token_ms_p50, challenger.latency_token_ms_p50
    if not old or not new:
        return False, "cheaper: latency per token not measured on both sides", {}
    limit = (1 - config.min_latency_saving) * old
    ok = new <= limit
    return ok, (f"cheaper: {new:.2f} ms/token vs {old:.2f} ({new / old:.2f}x; needs <= "
                f"{1 - config.min_latency_saving:.2f}x)"), {"latency_ratio": new / old,
                                                            "min_saving": config.min_latency_saving}


def non_inferior_and_cheaper(champion: FitnessVector, challenger: FitnessVector,
                             config: EvaluationConfig) -> NonInferiority:
    """Apply the rule in the module docstring (gates are the caller's: this only weighs evidence)."""
    checks = {
        "nll": _quality("NLL (nats/token)", champion.domain_case_nll, challenger.domain_case_nll, config,
                        margin=config.noninferior_nll_margin, higher_is_worse=True),
        "utility": _quality("utility", champion.utility_cases, challenger.utility_cases, config,
                            margin=config.noninferior_utility_margin, higher_is_worse=False),
        "cost": _cheaper(champion, challenger, config),
    }
    return NonInferiority(all(ok for ok, _, _ in checks.values()), [why for _, why, _ in checks.values()],
                          {name: stats for name, (_, _, stats) in checks.items()})
