"""The server's settings: the ``server:`` section of ecosystem.yaml, field for field.

Shadow and canary thresholds are not repeated here: the server judges live
traffic by the same ``rollout:`` section the ecosystem replay uses (canary
share, max_live_regression, min_canary_queries, seed), and automatic safety
actions are taken by the ``lifecycle:`` section's identity. ``ServerConfig``
carries both, loaded from their own sections, so a test can override one field
with ``dataclasses.replace``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from breedlab.ecosystem.config import SHIPPED
from breedlab.ecosystem.lifecycle import LifecycleConfig, load_lifecycle_config
from breedlab.ecosystem.rollout import RolloutConfig, load_rollout_config
from breedlab.typed_config import from_mapping, layered_section


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    """Interface to listen on; loopback unless told otherwise."""
    port: int = 8471
    max_concurrency: int = 2
    """Requests generating at once (each generation is CPU-bound)."""
    queue_limit: int = 16
    """Requests waiting for a generation slot; one more is refused with 429."""
    max_new_tokens_limit: int = 512
    """Largest ``max_tokens`` a request may ask for; above it is a 400."""
    default_max_tokens: int = 64
    """``max_tokens`` when a request gives none (bounded by the model's context)."""
    max_request_bytes: int = 1_000_000
    """Request bodies larger than this are refused with 413 before they are parsed."""
    request_timeout_s: float = 60.0
    """Longest wait for a slot (then 503), and longest generation (then it stops, finish_reason 'length')."""
    drain_timeout_s: float = 30.0
    """On shutdown: how long in-flight requests may take to finish; new ones get 503 meanwhile."""
    fit_policy: str = "hybrid"
    """Policy fitted, judged and (on passing evidence) crowned only when the home has no champion
    router policy; ``auto`` is routed by the champion policy alone."""
    shadow: bool = True
    """Whether shadow children answer copies of their niche's traffic."""
    shadow_queue_limit: int = 64
    """Background shadow/canary scoring jobs waiting; beyond it a job is dropped (and counted)."""
    shadow_record_every: int = 8
    """A ``shadow-scored`` registry event every this many paired shadow scores."""
    canary_window_queries: int = 24
    """Rolling window of paired canary scores the rollback gate is checked on."""
    history_minutes: int = 120
    """Minutes of routing decisions kept for the dashboard."""
    store_query_text: bool = True
    """Whether the task monitor keeps query text (False: only its sha256 and embedding)."""
    require_inference_key: bool = False
    """Whether /v1/* needs a bearer token with the inference (or approver) role (``admin.inference_key``)."""
    detector_window_queries: int = 50
    """Logged requests per task-monitor window; each closed window is scored by the detector (0: off)."""
    auto_breed: bool = False
    """Whether a ``spawn-requested`` from live traffic starts a breeding worker as governance's breeding
    identity at once (it breeds, never promotes: an approver still shadows the candidate). Off: the
    request waits for ``POST /admin/breed``."""
    engine: str = "fast"
    """``fast``: each model generates on the fastest engine whose recorded check against hf passed
    (``breedlab engines check``), else on hf; ``hf``: the transformers reference only."""
    replica: str = ""
    """Which Ray Serve replica this server is (``breedlab serve --ray``); empty when it serves alone. Shown
    in the ``x-breedlab-replica`` header, ``breedlab_replica_info`` in /metrics and on the dashboard."""
    writes: bool = True
    """False: a read replica. It routes and generates and reads the registry, and never writes it: admin
    and feedback requests, shadow/canary scoring and the detector's windows go to the one writer."""
    engine_threads: int = 2
    """Threads one generation uses on a llama.cpp or CTranslate2 engine."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """The ``rollout:`` section: canary share, live-regression gate, seed."""
    lifecycle: LifecycleConfig = field(default_factory=LifecycleConfig)
    """The ``lifecycle:`` section: ``actor`` is who rolls a canary back and records fallbacks."""

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise ValueError(f"port must lie in 1..65535, got {self.port}")
        if min(self.max_concurrency, self.max_new_tokens_limit, self.default_max_tokens,
               self.max_request_bytes, self.shadow_record_every, self.canary_window_queries,
               self.history_minutes) < 1 or min(self.queue_limit, self.shadow_queue_limit) < 0:
            raise ValueError("server limits must be positive (queue limits may be 0)")
        if self.default_max_tokens > self.max_new_tokens_limit:
            raise ValueError("default_max_tokens may not exceed max_new_tokens_limit")
        if min(self.request_timeout_s, self.drain_timeout_s) <= 0:
            raise ValueError("request_timeout_s and drain_timeout_s must be positive")
        if self.engine not in ("fast", "hf") or self.engine_threads < 1:
            raise ValueError(f"engine must be fast or hf (got {self.engine!r}) and engine_threads positive")
        if self.canary_window_queries < self.rollout.min_canary_queries:
            raise ValueError("canary_window_queries must hold at least rollout.min_canary_queries")


def load_server_config(path: Path = SHIPPED) -> ServerConfig:
    """``server:`` of an ecosystem YAML file plus its rollout and lifecycle sections; unknown keys are errors."""
    # Filled from their own sections of the file, so ``server:`` may not set them.
    nested = {"rollout": load_rollout_config(path), "lifecycle": load_lifecycle_config(path)}
    values, _ = layered_section(ServerConfig, path, "server", keys="server keys")
    return from_mapping(ServerConfig, values, f"{path}: server", keys="server keys", fixed=nested)
