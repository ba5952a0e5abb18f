"""Everything one server app instance serves with (``app.state.breedlab``), loaded in its lifespan.

Nothing here is module-level: two apps in one process (tests do this) share
no model, metric or queue. The registry stays the single source of truth for
who serves what: ``refresh_routes`` re-reads it, and every request checks the
event log's head first, so a promotion made by the CLI, by the admin
endpoints or by the server's own canary gate is served from the next request.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from breedlab.ecosystem.decide import decide
from breedlab.ecosystem.feedback import FeedbackStore
from breedlab.governance.config import GovernanceConfig, load_governance
from breedlab.governance.niche import all_active_children, current_champion
from breedlab.home import Home
from breedlab.registry import Registry
from breedlab.server.breeding import BreedingRuns
from breedlab.server.config import ServerConfig
from breedlab.server.engine import ModelHost
from breedlab.server.limiter import Limiter
from breedlab.server.live_detector import LiveDetector
from breedlab.server.live_rollout import LiveRollouts
from breedlab.server.routing import Catalogue, Decision
from breedlab.server.setup import choose_parent, load_router_policy, open_monitor
from breedlab.server.telemetry import Metrics, MonitorLog, RoutingHistory

log = logging.getLogger("breedlab.server")


FEEDBACK_FILE = "feedback.sqlite"

@dataclass
class ServerState:
    """One app's serving state. Attributes other modules read (admin, dashboard, tests):

    ``home``, ``config``; ``registry`` (the home's registry); ``governance`` (GovernanceConfig of the
    home); ``tokens`` (admin.load_tokens(home.root), set by the app); ``parent_id``; ``policy`` and
    ``policy_id`` (the router policy routing ``auto``, None when no policy could be had);
    ``routes`` (niche -> champion child id); ``catalogue`` (served models by public name);
    ``host`` (loaded models, parent fallback); ``rollouts`` (shadow/canary children and their live
    scores); ``monitor`` (the task monitor, written on its own thread); ``metrics`` (Prometheus,
    ``metrics.registry`` is this app's CollectorRegistry); ``history`` (routing decisions per
    minute); ``limiter`` (generation slots; made on the event loop); ``draining`` and ``inflight``
    (shutdown). Methods: ``routing_history()``, ``refresh_routes()``, ``decide(model, text)``.
    """

    home: Home
    config: ServerConfig
    registry: Registry
    governance: GovernanceConfig
    parent_id: str
    policy: object | None
    policy_id: str | None
    metrics: Metrics
    host: ModelHost
    monitor: MonitorLog
    rollouts: LiveRollouts
    history: RoutingHistory
    tokens: object = None
    detector: object = None
    """``live_detector.LiveDetector``: closes monitor windows as traffic comes in and runs the detector."""
    breeding: BreedingRuns | None = None
    """Breeding runs started by ``/admin/breed`` (one worker process at a time)."""
    routes: dict[str, str] = field(default_factory=dict)
    catalogue: Catalogue | None = None
    limiter: Limiter | None = None
    draining: bool = False
    inflight: int = 0
    policy_shadow: object = None
    """``router.shadow.PolicyShadow`` of the router policy in shadow, or None."""
    feedback: object = None
    """``ecosystem.feedback.FeedbackStore``: every served response's id, and people's ratings of them."""
    _seen_seq: int = -1
    _refresh_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def load(cls, home: Home, config: ServerConfig) -> ServerState:
        """Open the registry, load the parent and the router policy, open the monitor (seconds: blocking)."""
        registry = Registry.open(home.registry_dir)
        parent = choose_parent(registry)
        metrics = Metrics()
        if config.replica:
            metrics.replica.labels(config.replica).set(1)
        host = ModelHost(registry, parent.id, actor=config.lifecycle.actor if config.writes else "",
                         on_fallback=lambda child, _: metrics.fallbacks.labels(child[:12]).inc(),
                         cache_dir=home.cache_dir, engine=config.engine, engine_threads=config.engine_threads)
        loaded = host.get(parent.id)  # the parent must load: there is no fallback for the fallback
        governance = load_governance(home.root)
        policy, policy_artifact = load_router_policy(registry, config, governance)
        monitor = MonitorLog(lambda: open_monitor(home, registry, policy_artifact, loaded, config),
                             labels_path=home.logs_dir / "labels.sqlite")
        state = cls(home=home, config=config, registry=registry, governance=governance,
                    parent_id=parent.id, policy=policy, policy_id=policy_artifact.id if policy_artifact else None,
                    metrics=metrics, host=host, monitor=monitor, rollouts=None,
                    history=RoutingHistory(config.history_minutes))
        state.feedback = FeedbackStore(home.logs_dir / FEEDBACK_FILE)
        state.rollouts = LiveRollouts(registry, config, metrics, host, on_rollback=state._rolled_back)
        out_of_domain = policy_artifact.manifest.recipe.get("out_of_domain", []) if policy_artifact else []
        state.detector = LiveDetector(monitor, home, loaded, window_queries=config.detector_window_queries,
                                      parent_domains=list(out_of_domain),
                                      on_request=state._auto_breed if config.auto_breed else None)
        state.breeding = BreedingRuns(registry, home, parent.id, server_actor=config.lifecycle.actor)
        if config.writes:  # a read replica never writes: the writer reconciles its breeding runs
            state.breeding.reconcile()
        state.refresh_routes()
        monitor.wait_ready()
        return state

    # ----- what the admin and dashboard modules call -------------------------------------

    def routing_history(self) -> list[dict]:
        """Served-model counts per UTC minute, oldest first: ``[{"minute", "served": {name: n}}]``."""
        return self.history.snapshot()

    def refresh_routes(self) -> None:
        """Re-read champions, shadow/canary children and the served catalogue from the registry."""
        with self._refresh_lock:
            seq = self._head()
            self._sync_policies()
            niches = list(self.policy.niches) if self.policy is not None else []
            routes = {}
            for niche in niches:
                champion = current_champion(self.registry, niche)
                if champion is not None:
                    routes[niche] = champion.id
            children = all_active_children(self.registry)
            self.catalogue = Catalogue.build(self.registry, self.registry.get(self.parent_id), children)
            self.routes = routes
            self.rollouts.sync(niches)
            for model_id in self.host.loaded_ids():
                if model_id not in {a.id for a in self.catalogue.models.values()}:
                    self.host.release(model_id)  # retired or rejected: free its memory
            self._seen_seq = seq

    def _sync_policies(self) -> None:
        """Route by the champion router policy (a newly crowned one replaces the old); shadow the
        policy in shadow state, if any: its routes are recorded (``router/shadow.py``), never used."""
        from breedlab.ecosystem.router.base import load_policy
        from breedlab.ecosystem.router.candidates import champion_policy
        from breedlab.ecosystem.router.shadow import PolicyShadow
        from breedlab.server.setup import policy_embedder

        champion = champion_policy(self.registry)
        if champion is not None and champion.id != self.policy_id:
            self.policy, self.policy_id = load_policy(champion, embedder=policy_embedder(champion)), champion.id
        shadows = self.registry.find(kind="router-policy", state="shadow")
        if not shadows:
            self.policy_shadow = None
        elif self.policy_shadow is None or self.policy_shadow.policy_id != shadows[0].id:
            policy = load_policy(shadows[0], embedder=policy_embedder(shadows[0]))
            self.policy_shadow = PolicyShadow(self.home.logs_dir / "router-shadow.sqlite", shadows[0].id, policy)

    def refresh_if_changed(self) -> None:
        """Refresh when the event log moved since the last refresh (cheap: reads the log's tail)."""
        if self._head() != self._seen_seq:
            self.refresh_routes()

    # ----- serving ----------------------------------------------------------------------

    def decide(self, requested: str, text: str) -> Decision:
        """The routing decision for one request (ModelNotFound for a name that is not served)."""
        self.refresh_if_changed()
        if requested != "auto":
            artifact = self.catalogue.find(requested)
            return Decision(requested, artifact.id, "explicit", None,
                            f"requested by name: {self.catalogue.name_of(artifact.id)}")
        if self.policy is None:
            return Decision("auto", self.parent_id, "parent", None,
                            "no router policy: the parent serves everything (no-op route)")
        route = self.policy.route([text], self.routes)[0]
        decision = decide(self.policy, text, route, self.rollouts.stages(), self.config.rollout, self.parent_id)
        if self.policy_shadow is not None:  # computed and recorded beside the champion's, never used
            self.policy_shadow.observe(text, route, self.policy, label=None)
        return decision

    def close(self) -> None:
        """Stop background work: a breeding worker is stopped (it resumes on the next trigger), shadow
        jobs waiting are dropped, the monitor's queue is written out."""
        self.breeding.close()
        self.rollouts.close()
        self.monitor.close()
        if self.feedback is not None:
            self.feedback.close()

    def _auto_breed(self, request) -> None:
        """``server.auto_breed``: a live spawn request starts breeding as the breeder, or says why not."""
        from breedlab.server.admin_breed import BreedingBusy, domain_problem

        problem = domain_problem(self.registry, request.domain)
        try:
            if problem is None:
                self.breeding.start(request.domain, identity=self.governance.breeder, role="breeder")
                return
        except BreedingBusy as error:
            problem = str(error)
        self.registry.record("spawn-deferred", self.parent_id, actor=self.config.lifecycle.actor,
                             reason=f"auto-breed for {request.domain} not started: {problem}",
                             data={"domain": request.domain})

    def _rolled_back(self, child_id: str) -> None:
        self.refresh_routes()
        self.host.release(child_id)

    def _head(self) -> int:
        last = self.registry.log.last()
        return last.seq if last else 0
