"""Live traffic drives the specialisation detector.

Every served request is logged to the task monitor (``telemetry.MonitorLog``);
every ``detector_window_queries`` of them, the monitor's window is closed on the
monitor's own thread and the detector scores it. A domain over tau_spawn
(after its cooldown, with no active specialist, and not one of the parent's own
domains) gets a ``spawn-requested`` event on the parent, with every input of
its score. ``POST /admin/breed`` acts on it; with ``server.auto_breed`` the
``on_request`` callback starts a breeding worker as the breeding identity at
once (``state.ServerState._auto_breed``). Either way the server never promotes
what was bred: an approver does.

The detector gets its own ``Registry`` instance, opened on the monitor thread:
the registry's index connection belongs to the thread that opened it.
"""

from __future__ import annotations

import logging
import threading
import time

from breedlab.registry import Registry

log = logging.getLogger("breedlab.server")


class LiveDetector:
    def __init__(self, monitor_log, home, parent, *, window_queries: int, parent_domains: list[str],
                 on_request=None):
        self.monitor_log, self.home, self.parent = monitor_log, home, parent
        self.on_request = on_request
        """Called with each ``SpawnRequest`` the detector makes (on the monitor's thread)."""
        self.window_queries, self.parent_domains = window_queries, list(parent_domains)
        self.detector = None
        self._count = 0
        self._lock = threading.Lock()

    def logged(self) -> None:
        """One more request logged; close a window when enough have been."""
        if self.window_queries <= 0:
            return
        with self._lock:
            self._count += 1
            due = self._count % self.window_queries == 0
        if due:
            self.monitor_log.call(self._close_window)

    def _close_window(self, monitor) -> list:
        try:
            if self.detector is None:
                self.detector = self._make_detector()
            stats = monitor.close_window()
            requests = self.detector.observe(stats, time.time())
            for request in requests if self.on_request is not None else ():
                self.on_request(request)
            return requests
        except Exception as error:  # the detector must never take serving down with it
            log.error("detector window failed: %s", error)
            return []

    def _make_detector(self):
        from breedlab.ecosystem.detector import Detector, load_detector_config, registered_specialist
        from breedlab.evaluation.cost import flops_per_token

        registry = Registry.open(self.home.registry_dir)
        config = self.parent.model.config
        specialist = registered_specialist(registry)
        return Detector(load_detector_config(), registry, self.parent.id, actor="detector",
                        parent_flops_per_token=flops_per_token(config, 64),
                        head_flops_per_token=2.0 * config.hidden_size * config.vocab_size,
                        has_specialist=lambda d: d in self.parent_domains or specialist(d))
