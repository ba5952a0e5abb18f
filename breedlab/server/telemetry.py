"""What the server tells about its traffic: Prometheus metrics, the task monitor log, routing history.

Metrics live in a ``CollectorRegistry`` per app (never the process-global
default registry, so two apps in one process count apart). The task monitor
is written from one dedicated thread: it owns a SQLite connection (usable only
from the thread that opened it) and embeds every query (milliseconds of CPU
that must not block the event loop). ``flush()`` waits for what was queued.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

log = logging.getLogger("breedlab.server")
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The server's Prometheus metrics (names prefixed ``breedlab_``)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = PromCounter("breedlab_requests", "Requests by serving model, endpoint and status code",
                                    ["model", "endpoint", "status"], registry=r)
        self.latency = Histogram("breedlab_request_latency_seconds", "Request latency by serving model",
                                 ["model", "endpoint"], buckets=LATENCY_BUCKETS, registry=r)
        self.tokens = PromCounter("breedlab_tokens", "Tokens by serving model and kind (prompt, completion)",
                                  ["model", "kind"], registry=r)
        self.routes = PromCounter("breedlab_routing_decisions", "Routing decisions by route and serving model",
                                  ["route", "model"], registry=r)
        self.canary = Gauge("breedlab_canary_state", "1 while a child is canary in a niche, 0 once it left",
                            ["niche", "child"], registry=r)
        self.shadow_scores = PromCounter("breedlab_shadow_scores", "Paired shadow scores by niche",
                                         ["niche"], registry=r)
        self.shadow_delta = Gauge("breedlab_live_mean_delta_nats",
                                  "Mean child - champion NLL on live traffic, by stage", ["niche", "child", "stage"],
                                  registry=r)
        self.rollbacks = PromCounter("breedlab_canary_rollbacks", "Canaries rolled back by the live gate",
                                     ["niche"], registry=r)
        self.fallbacks = PromCounter("breedlab_serve_fallbacks", "Children that failed to load", ["child"],
                                     registry=r)
        self.refused = PromCounter("breedlab_refused", "Requests refused before generating, by reason",
                                   ["reason"], registry=r)
        self.disconnects = PromCounter("breedlab_client_disconnects",
                                       "Answers abandoned by their client mid-generation (generation stopped)",
                                       ["kind"], registry=r)
        self.background_dropped = PromCounter("breedlab_background_dropped",
                                              "Shadow/canary scoring jobs dropped (queue full)", registry=r)
        self.feedback = PromCounter("breedlab_feedback", "People's ratings of served responses, by model",
                                    ["model", "rating"], registry=r)
        self.approval = Gauge("breedlab_approval_rate", "Share of a model's rated responses rated +1", ["model"],
                              registry=r)
        self.inflight = Gauge("breedlab_generating", "Requests generating now", registry=r)
        self.waiting = Gauge("breedlab_waiting", "Requests waiting for a generation slot", registry=r)
        self.replica = Gauge("breedlab_replica_info", "1 for the Ray Serve replica every other series here counts "
                             "(a scrape sees one replica; sum them per replica)", ["replica"], registry=r)


class MonitorLog:
    """The task monitor, written from its own thread; ``make_monitor`` runs there once."""

    def __init__(self, make_monitor, labels_path=None) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="breedlab-monitor")
        self._ready: Future = self._executor.submit(self._open, make_monitor, labels_path)
        self.monitor = None
        self.labels = None

    def _open(self, make_monitor, labels_path) -> None:
        self.monitor = make_monitor()
        if labels_path is not None:  # the monitor's confident assignments, with their provenance
            from breedlab.ecosystem.labels import LabelStore

            self.labels = LabelStore(labels_path)

    def wait_ready(self) -> None:
        """Block until the monitor is open (raises what opening it raised)."""
        self._ready.result()

    def log(self, text: str, *, model: str, latency_ms: float, tokens: int) -> Future:
        return self._executor.submit(self._log, text, model, latency_ms, tokens)

    def _log(self, text: str, model: str, latency_ms: float, tokens: int) -> str | None:
        try:
            domain = self.monitor.log(text, model=model, latency_ms=latency_ms, tokens=tokens)
            if domain is not None and self.labels is not None:
                self.labels.add(text, domain, "monitor", keep_text=self.monitor.store_text)
            return domain
        except Exception as error:  # telemetry must never take a request down with it
            log.error("task monitor log failed: %s", error)
            return None

    def call(self, fn) -> Future:
        """Run ``fn(monitor)`` on the monitor's thread (e.g. ``lambda m: m.close_window()``)."""
        return self._executor.submit(lambda: fn(self.monitor))

    def flush(self, timeout: float | None = None) -> None:
        self._executor.submit(lambda: None).result(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class RoutingHistory:
    """Served-model counts per UTC minute, for the last ``minutes`` minutes that saw traffic."""

    def __init__(self, minutes: int) -> None:
        self._minutes: deque[tuple[str, Counter]] = deque(maxlen=minutes)
        self._lock = threading.Lock()

    def add(self, model: str, now: datetime | None = None) -> None:
        minute = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%MZ")
        with self._lock:
            if not self._minutes or self._minutes[-1][0] != minute:
                self._minutes.append((minute, Counter()))
            self._minutes[-1][1][model] += 1

    def snapshot(self) -> list[dict]:
        """Oldest first: ``[{"minute": "2025-01-01T12:34Z", "served": {model: count}}]``."""
        with self._lock:
            return [{"minute": minute, "served": dict(counts)} for minute, counts in self._minutes]
