"""The living ecosystem, one query and one window at a time.

``Ecosystem.serve`` is the per-query path: route (``decide.decide``, the rule the
server uses too: the router policy over the niches that have a champion child; canary
share by a seeded hash), serve (a
real forward pass), shadow work (a shadow child answers a copy; a sample of a
champion child's traffic is re-scored by the parent for revalidation), log
(task monitor). ``Ecosystem.close_window`` is the slow path: the monitor's
per-domain stats, the detector, rollout verdicts, pruning, revalidation and
spawns, each leaving events in the registry.

It also measures the parent-only baseline of every query (the parent's own
forward pass on the same text), so the compute saving is measured side by
side, not projected. Shadow and revalidation passes are counted apart from
serving (``flops.shadow``): they are the price of the evidence.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field

from breedlab.ecosystem.decide import decide
from breedlab.ecosystem.lifecycle import ChildWatch, LifecycleConfig, add_revalidation_pair
from breedlab.ecosystem.rollout import Rollout, RolloutConfig
from breedlab.ecosystem.serving import ModelPool, Served
from breedlab.ecosystem.trace import Query
from breedlab.governance.niche import current_champion
from breedlab.registry import Registry

PARENT = "parent"


@dataclass
class WindowTally:
    """What one window's queries cost and who served them."""

    mix: Counter = field(default_factory=Counter)
    served: Counter = field(default_factory=Counter)
    flops_served: float = 0.0
    flops_parent_only: float = 0.0
    flops_shadow: float = 0.0
    ms_served: float = 0.0
    ms_parent_only: float = 0.0
    routing: dict = field(default_factory=dict)
    """shape -> [queries, routed right]: right is the query's own niche, or the parent for a parent domain."""


@dataclass
class EcosystemParts:
    """Everything the ecosystem runs with (built by the demo or a test)."""

    registry: Registry
    parent_id: str
    pool: ModelPool
    policy: object
    """A fitted, calibrated router policy (``breedlab.ecosystem.router.base``)."""
    monitor: object
    detector: object
    rollout: RolloutConfig
    lifecycle: LifecycleConfig
    labels: object = None
    """``labels.LabelStore`` the monitor's confident assignments go to (None: no labels kept)."""
    router_config: object = None
    """``router.evidence.RouterConfig`` of online adaptation (None: the router is never refitted)."""
    router_log: object = None
    """SQLite file where a shadow router policy's routes are recorded."""
    merge: object = None
    """``merge.config.MergeConfig`` of the steward's merge reviews (None: merges are never reviewed)."""


class Ecosystem:
    def __init__(self, parts: EcosystemParts):
        self.parts = parts
        self.registry, self.pool = parts.registry, parts.pool
        self.rollouts: dict[str, Rollout] = {}  # niche -> child in shadow or canary
        self.watches: dict[str, ChildWatch] = {}  # niche -> champion child under watch
        self.routes: dict[str, str] = {}  # niche -> champion child id
        self.tally = WindowTally()
        self.policy_shadow = None  # router.shadow.PolicyShadow of a router policy in shadow
        self.labels_seen = 0  # the last label id a refit learnt from
        self.shadow_log = parts.router_log
        self.refresh_routes()

    def refresh_routes(self) -> None:
        """Niches with a champion child, read from the registry (the single source of truth)."""
        self.routes = {}
        for niche in self.parts.policy.niches:
            champion = current_champion(self.registry, niche)
            if champion is not None:
                self.routes[niche] = champion.id

    def serve(self, query: Query, *, measure_baseline: bool = True) -> Served:
        policy, parent_id = self.parts.policy, self.parts.parent_id
        route = policy.route([query.text], self.routes)[0]
        stages = {niche: (rollout.child, rollout.stage) for niche, rollout in self.rollouts.items()}
        decision = decide(policy, query.text, route, stages, self.parts.rollout, parent_id)
        niche = decision.niche  # a niche's traffic is what the router confidently assigns to it
        target = None if decision.model_id == parent_id else decision.model_id
        served = self.pool.run(target or self.parts.parent_id, query.text)
        baseline = self.pool.run(self.parts.parent_id, query.text) if target and measure_baseline else None
        if niche is not None:
            self._shadow_work(niche, target, served, baseline, query.text)
        self._count(query, target, served, baseline)
        self._count_route(query, niche)
        label = self.parts.monitor.log(query.text, model=target or self.parts.parent_id,
                                       latency_ms=served.latency_ms, tokens=served.tokens)
        if label is not None and self.parts.labels is not None:
            self.parts.labels.add(query.text, label, "monitor", keep_text=self.parts.monitor.store_text)
        if self.policy_shadow is not None:  # its route is recorded beside the champion's, never used
            self.policy_shadow.observe(query.text, route, policy, label)
        return served

    def _shadow_work(self, niche: str, target: str | None, served: Served, baseline: Served | None,
                     text: str) -> None:
        rollout = self.rollouts.get(niche)
        if rollout is not None and rollout.stage == "shadow":
            copy = self.pool.run(rollout.child, text)  # answered, scored, never returned
            rollout.add_pair(copy.nll, served.nll)
            self.tally.flops_shadow += copy.flops
        elif rollout is not None and target == rollout.child:  # a canary query: the champion scores it in shadow
            champion_id = self.routes.get(niche, self.parts.parent_id)
            reuse = baseline is not None and champion_id == self.parts.parent_id
            champion = baseline if reuse else self.pool.run(champion_id, text)
            self.tally.flops_shadow += 0.0 if reuse else champion.flops
            rollout.add_pair(served.nll, champion.nll)
        watch = self.watches.get(niche)
        if watch is not None and target == watch.child and _sampled(text, self.parts.lifecycle.revalidate_sample):
            parent = baseline or self.pool.run(self.parts.parent_id, text)
            self.tally.flops_shadow += 0.0 if baseline else parent.flops
            add_revalidation_pair(watch, served.nll, parent.nll, self.parts.lifecycle)

    def _count(self, query: Query, target: str | None, served: Served, baseline: Served | None) -> None:
        tally = self.tally
        tally.mix[query.domain] += 1
        tally.served[target or PARENT] += 1
        tally.flops_served += served.flops
        tally.ms_served += served.latency_ms
        tally.flops_parent_only += baseline.flops if baseline else served.flops
        tally.ms_parent_only += baseline.latency_ms if baseline else served.latency_ms

    def _count_route(self, query: Query, niche: str | None) -> None:
        """Router accuracy as the trace's labels see it (the ecosystem itself never reads them)."""
        right = niche == query.domain if query.domain in self.parts.policy.niches else niche is None
        counts = self.tally.routing.setdefault(query.shape, [0, 0])
        counts[0] += 1
        counts[1] += int(right)

    def take_tally(self) -> WindowTally:
        tally, self.tally = self.tally, WindowTally()
        return tally


def _sampled(text: str, share: float) -> bool:
    """A deterministic ``share`` of texts (by hash), so reruns sample the same queries."""
    return int.from_bytes(hashlib.sha256(b"revalidate:" + text.encode()).digest()[:8], "big") / 2**64 < share
