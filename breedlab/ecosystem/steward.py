"""The slow path: what the ecosystem does when a window of traffic closes.

In order: the monitor's per-domain stats and the detector's scores; rollout
verdicts (shadow -> canary -> champion by the approver, rejection and canary
rollback by the lifecycle identity); pruning of idle champions; revalidation
of degraded ones; merge reviews of converged champions (every
``merge.review_every_windows`` windows); spawns for the detector's requests.
The returned record is one row of the demo's timeline.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import combinations

from breedlab.ecosystem.lifecycle import (
    ChildWatch,
    conclude_lease_review,
    conclude_revalidation,
    degraded,
    flag,
    lease_expired,
    open_lease_review,
    prune,
    record_usage,
)
from breedlab.ecosystem.rollout import Rollout, judge
from breedlab.ecosystem.router.steward import adapt_router
from breedlab.ecosystem.runner import PARENT, Ecosystem
from breedlab.governance.config import GovernanceConfig
from breedlab.governance.promotion import promote


@dataclass
class Authority:
    """Who acts: the approver promotes; spawns and re-evaluations are callables the owner provides."""

    governance: GovernanceConfig
    approver: str
    spawn: Callable
    """(SpawnRequest) -> SpawnResult: breed, evaluate, and shadow the useful specialist (``spawn.run_spawn``)."""
    reevaluate: Callable
    """(niche, child id) -> (Decision, evidence packet id) on the frozen suites (``spawn.reevaluate``)."""
    merge: Callable | None = None
    """(a id, b id, centroid similarity) -> MergeOutcome (``merge.review.consider_merge``); None: no reviews."""


def close_window(eco: Ecosystem, authority: Authority, *, index: int, phase: str, now: float) -> dict:
    """Close one window: score, judge, prune, revalidate, spawn; return its timeline record."""
    tally = eco.take_tally()
    stats = eco.parts.monitor.close_window()
    sigma = {s.domain: round(eco.parts.detector.score(s)[0], 4) for s in stats}
    requests = eco.parts.detector.observe(stats, now)
    _judge_rollouts(eco, authority, now)
    _prune_idle(eco, tally)
    _revalidate(eco, authority)
    _review_leases(eco, authority, now)
    merges = _review_merges(eco, authority, index)
    for request in requests:
        result = authority.spawn(request)
        if result.child is not None:
            eco.rollouts[request.domain] = Rollout(result.child.id, request.domain)
    router = adapt_router(eco, authority, index)
    eco.refresh_routes()
    total = sum(tally.served.values())
    return {"index": index, "phase": phase, "queries": total, "mix": dict(sorted(tally.mix.items())),
            "served": dict(sorted(tally.served.items())), "sigma": sigma,
            "flops": {"served": tally.flops_served, "parent_only": tally.flops_parent_only,
                      "shadow": tally.flops_shadow},
            "latency_ms": {"served": tally.ms_served, "parent_only": tally.ms_parent_only},
            "routing": {shape: {"queries": n, "right": right} for shape, (n, right) in sorted(tally.routing.items())},
            **({"router": router} if router else {}), **({"merges": merges} if merges else {})}


def _judge_rollouts(eco: Ecosystem, authority: Authority, now: float) -> None:
    lifecycle = eco.parts.lifecycle
    for niche, rollout in list(eco.rollouts.items()):
        verdict = judge(rollout, eco.parts.rollout)
        if verdict.action == "hold":
            continue
        if verdict.action == "advance" and rollout.stage == "shadow":
            promote(eco.registry, authority.governance, rollout.child, "canary", niche=niche,
                    approver=authority.approver, reason=f"approver: {verdict.reason}")
            rollout.next_stage("canary")
            continue
        del eco.rollouts[niche]
        if verdict.action == "advance":  # a canary that held: crown it, and watch it from now on
            promote(eco.registry, authority.governance, rollout.child, "champion", niche=niche,
                    approver=authority.approver, reason=f"approver: {verdict.reason}")
            eco.watches[niche] = ChildWatch(rollout.child, niche, baseline_delta=verdict.data["mean_delta"],
                                            lease_until=now + lease_seconds(authority))
            continue
        event_type = "rejected" if verdict.action == "reject" else "rolled-back"
        eco.registry.transition(rollout.child, "rejected", event_type=event_type, actor=lifecycle.actor,
                                reason=f"{verdict.reason}; {niche} stays with its champion",
                                data={"niche": niche, **verdict.data})
        eco.pool.release(rollout.child)


def _prune_idle(eco: Ecosystem, tally) -> None:
    total = max(1, sum(tally.served.values()))
    for niche, watch in list(eco.watches.items()):
        share = tally.served.get(watch.child, 0) / total
        if record_usage(watch, share, eco.parts.lifecycle):
            prune(eco.registry, watch, eco.parts.lifecycle)
            del eco.watches[niche]
            eco.pool.release(watch.child)


def _revalidate(eco: Ecosystem, authority: Authority) -> None:
    for niche, watch in list(eco.watches.items()):
        if not degraded(watch, eco.parts.lifecycle):
            continue
        flag(eco.registry, watch, eco.parts.lifecycle)
        decision, packet = authority.reevaluate(niche, watch.child)
        conclude_revalidation(eco.registry, watch, decision, packet, eco.parts.lifecycle)
        if eco.registry.get(watch.child).state != "champion":
            del eco.watches[niche]
            eco.pool.release(watch.child)


def lease_seconds(authority: Authority) -> float:
    """A champion's lease on the ecosystem's clock (seconds; the demo's window is one day)."""
    return authority.governance.lease_days * 86_400.0


def _review_leases(eco: Ecosystem, authority: Authority, now: float) -> None:
    """Every champion whose lease ran out: re-evaluated, then renewed, demoted to shadow, or retired."""
    for niche, watch in list(eco.watches.items()):
        if not lease_expired(watch, now):
            continue
        open_lease_review(eco.registry, watch, eco.parts.lifecycle, now)
        decision, packet = authority.reevaluate(niche, watch.child)
        outcome = conclude_lease_review(eco.registry, watch, decision, packet, eco.parts.lifecycle, now,
                                        lease_seconds(authority))
        if outcome == "renewed":
            continue
        del eco.watches[niche]
        if outcome == "demoted":
            eco.rollouts[niche] = Rollout(watch.child, niche)  # back in shadow: live traffic judges it again
        else:
            eco.pool.release(watch.child)


def _review_merges(eco: Ecosystem, authority: Authority, index: int) -> list[dict]:
    """Every pair of champion children, judged by ``consider_merge`` on its domains' centroid similarity
    (the task monitor's); each review leaves events, so "not converged" is on record too. A pair whose
    niche has no centroid is not reviewed (its convergence cannot be measured)."""
    config, centroids = eco.parts.merge, getattr(eco.parts.monitor, "centroids", None)
    every = config.review_every_windows if config is not None else 0
    if authority.merge is None or every <= 0 or (index + 1) % every or centroids is None:
        return []
    reviews = []
    for (niche_a, watch_a), (niche_b, watch_b) in combinations(sorted(eco.watches.items()), 2):
        similarity = centroids.similarity(niche_a, niche_b)
        if similarity is None:
            continue
        outcome = authority.merge(watch_a.child, watch_b.child, similarity)
        reviews.append({"niches": [niche_a, niche_b], "outcome": outcome.outcome, "reason": outcome.reasons[0]})
        if outcome.outcome == "merged":  # both retired; the merged model is the first niche's champion
            for niche, watch in ((niche_a, watch_a), (niche_b, watch_b)):
                del eco.watches[niche]
                eco.pool.release(watch.child)
            eco.watches[niche_a] = ChildWatch(outcome.merged.id, niche_a, baseline_delta=0.0)
    return reviews


__all__ = ["PARENT", "Authority", "close_window"]
