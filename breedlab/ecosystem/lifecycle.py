"""Prune and revalidate: the ecosystem keeps only children that are used and still good.

**Prune.** At each window's close every champion child's usage share (queries
it served / queries in the window) is recorded; a child whose share stays
under ``prune_min_share`` for ``prune_windows`` consecutive windows is retired
and the router sends its niche back to the parent (the no-op route).

**Revalidate.** A sample (``revalidate_sample``) of each champion child's
served queries is also scored by the parent, in shadow, giving paired live
deltas (child NLL - parent NLL). Their rolling mean over the last
``revalidate_queries`` samples is compared with the child's frozen baseline:
the delta measured on live traffic when it was crowned (the rollout records
it in the promotion event). A child whose rolling delta exceeds its baseline
by more than ``revalidate_tolerance`` is **flagged** and **re-evaluated** on
the frozen suites exactly as the lab evaluates a candidate (gates, then the
champion-challenger rule against the parent). If it still earns promotion it
stays (the event says the live drift was in the traffic, not the model);
otherwise it is rolled back and the niche returns to the parent.

**Lease review.** Crowning gives a champion a lease (``governance.lease_days``
on the ecosystem's clock). When it runs out a ``lease-review`` event opens a
retirement review: the child is re-evaluated on the frozen suites and its live
samples are read. It is retired if the suites no longer say promote, demoted
to shadow (live traffic must earn its place again) if the suites pass but its
live delta drifted past tolerance, and otherwise renewed (``lease-renewed``,
with the next expiry). Each outcome is one event with its numbers.

Pruning, a failed revalidation and a failed lease review are safety actions:
they remove exposure, so the lifecycle identity takes them without an approver.
Each is one event with its reason and numbers.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from breedlab.ecosystem.config import SHIPPED, load_section
from breedlab.registry import Registry


@dataclass(frozen=True)
class LifecycleConfig:
    actor: str = "ecosystem"
    """Identity of automatic safety actions (prune, canary rollback, failed revalidation)."""
    prune_min_share: float = 0.05
    """A champion child serving less than this share of a window's queries is idle that window."""
    prune_windows: int = 2
    """Consecutive idle windows before the child is retired."""
    revalidate_sample: float = 0.25
    """Share of a champion child's served queries the parent also scores in shadow."""
    revalidate_queries: int = 24
    """Rolling window of sampled pairs."""
    revalidate_min_queries: int = 8
    """Pairs needed before a child can be flagged."""
    revalidate_tolerance: float = 0.25
    """nats/token above the live baseline that flags a child."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.prune_min_share < 1.0 or self.prune_windows < 1:
            raise ValueError("prune_min_share must lie in [0, 1) and prune_windows be at least 1")
        if not 0.0 < self.revalidate_sample <= 1.0 or self.revalidate_min_queries > self.revalidate_queries:
            raise ValueError("revalidate_sample must lie in (0, 1] and min_queries <= revalidate_queries")


def load_lifecycle_config(path=SHIPPED) -> LifecycleConfig:
    return load_section(LifecycleConfig, "lifecycle", path)


@dataclass
class ChildWatch:
    """What the lifecycle remembers about one champion child."""

    child: str
    niche: str
    baseline_delta: float
    """Live child - parent NLL at crowning (nats/token)."""
    idle_shares: list[float] = field(default_factory=list)
    """Usage shares of the current run of idle windows."""
    pairs: deque = field(default_factory=deque)
    """Rolling (child NLL, parent NLL) samples."""
    lease_until: float | None = None
    """When its lease runs out, on the ecosystem's clock (seconds); None: no lease (never reviewed)."""


def record_usage(watch: ChildWatch, share: float, config: LifecycleConfig) -> bool:
    """Add one window's usage share; True when the child has been idle long enough to prune."""
    watch.idle_shares = watch.idle_shares + [share] if share < config.prune_min_share else []
    return len(watch.idle_shares) >= config.prune_windows


def prune(registry: Registry, watch: ChildWatch, config: LifecycleConfig):
    """Retire an idle champion child; its niche returns to the parent."""
    shares = ", ".join(f"{s:.1%}" for s in watch.idle_shares)
    reason = (f"pruned: served {shares} of the traffic in the last {len(watch.idle_shares)} windows, under the "
              f"minimum {config.prune_min_share:.0%}; {watch.niche} queries return to the parent")
    return registry.transition(watch.child, "retired", event_type="retired", actor=config.actor, reason=reason,
                               data={"niche": watch.niche, "action": "prune", "shares": list(watch.idle_shares),
                                     "min_share": config.prune_min_share})


def add_revalidation_pair(watch: ChildWatch, child_nll: float, parent_nll: float, config: LifecycleConfig) -> None:
    watch.pairs.append((child_nll, parent_nll))
    while len(watch.pairs) > config.revalidate_queries:
        watch.pairs.popleft()


def rolling_delta(watch: ChildWatch) -> float | None:
    if not watch.pairs:
        return None
    return sum(c - p for c, p in watch.pairs) / len(watch.pairs)


def degraded(watch: ChildWatch, config: LifecycleConfig) -> bool:
    """Enough samples and a rolling delta beyond baseline + tolerance."""
    delta = rolling_delta(watch)
    return (len(watch.pairs) >= config.revalidate_min_queries and delta is not None
            and delta > watch.baseline_delta + config.revalidate_tolerance)


def flag(registry: Registry, watch: ChildWatch, config: LifecycleConfig):
    delta = rolling_delta(watch)
    reason = (f"flagged: rolling live child - parent NLL {delta:+.4f} nats/token over {len(watch.pairs)} sampled "
              f"{watch.niche} queries exceeds the baseline {watch.baseline_delta:+.4f} by more than "
              f"{config.revalidate_tolerance}; re-evaluating on the frozen suites")
    return registry.record("flagged", watch.child, actor=config.actor, reason=reason,
                           data={"niche": watch.niche, "rolling_delta": delta, "baseline": watch.baseline_delta,
                                 "samples": len(watch.pairs), "tolerance": config.revalidate_tolerance})


def conclude_revalidation(registry: Registry, watch: ChildWatch, decision, packet_id: str,
                          config: LifecycleConfig):
    """After re-evaluation: keep the child (``revalidated``) or roll it back to the parent."""
    data = {"niche": watch.niche, "evidence": packet_id, "outcome": decision.outcome,
            "reasons": list(decision.reasons)}
    watch.pairs.clear()
    if decision.outcome == "promote":
        return registry.record("revalidated", watch.child, actor=config.actor, data=data,
                               reason="kept: the frozen suites still say promote; the live drift is in the traffic")
    return registry.transition(watch.child, "retired", event_type="rolled-back", actor=config.actor, data=data,
                               reason=f"re-evaluation says {decision.outcome}: " + "; ".join(decision.reasons))


def lease_expired(watch: ChildWatch, now: float) -> bool:
    return watch.lease_until is not None and now >= watch.lease_until


def open_lease_review(registry: Registry, watch: ChildWatch, config: LifecycleConfig, now: float):
    delta = rolling_delta(watch)
    return registry.record("lease-review", watch.child, actor=config.actor,
                           reason=f"lease ran out at {watch.lease_until:.0f} (now {now:.0f}): re-evaluating on the "
                                  "frozen suites and its live samples",
                           data={"niche": watch.niche, "lease_until": watch.lease_until, "now": now,
                                 "rolling_delta": delta, "samples": len(watch.pairs),
                                 "baseline": watch.baseline_delta})


def conclude_lease_review(registry: Registry, watch: ChildWatch, decision, packet_id: str, config: LifecycleConfig,
                          now: float, lease_seconds: float) -> str:
    """Retire, demote to shadow or renew (the module docstring); returns which."""
    data = {"niche": watch.niche, "evidence": packet_id, "outcome": decision.outcome,
            "reasons": list(decision.reasons), "rolling_delta": rolling_delta(watch), "samples": len(watch.pairs)}
    if decision.outcome != "promote":
        registry.transition(watch.child, "retired", event_type="retired", actor=config.actor, data=data,
                            reason=f"lease review: the frozen suites say {decision.outcome}: "
                                   + "; ".join(decision.reasons))
        return "retired"
    if degraded(watch, config):
        registry.transition(watch.child, "shadow", event_type="demoted", actor=config.actor, data=data,
                            reason=f"lease review: the suites pass but the live delta {data['rolling_delta']:+.4f} "
                                   f"drifted past the baseline {watch.baseline_delta:+.4f} + {config.revalidate_tolerance}"
                                   "; back to shadow to earn its place on live traffic")
        return "demoted"
    watch.lease_until = now + lease_seconds
    registry.record("lease-renewed", watch.child, actor=config.actor, data={**data, "lease_until": watch.lease_until},
                    reason=f"lease review passed: renewed until {watch.lease_until:.0f}")
    return "renewed"
