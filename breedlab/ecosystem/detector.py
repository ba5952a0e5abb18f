"""Specialisation detector (node 3 of the ecosystem): when is a domain worth a child?

For each domain D of a closed monitor window the detector scores

    sigma(D) = w_volume * volume_share(D)
             + w_gap * min(parent_gap(D) / gap_reference, 1)
             + w_savings * savings(D, p)

    savings(D, p) = tokens(D) * (F_parent - F_child(p)) / (window_tokens * F_parent)

i.e. the fraction of the whole window's compute that would be saved had D's
traffic been served by a child at ratio p. Per token, the child's FLOPs are
approximated as

    F_child(p) = p * (F_parent - F_head) + F_head

(the child keeps a share p of the parent's non-embedding compute; the LM head
over the full vocabulary stays, since children keep the parent's tokenizer).

It fires (returns a SpawnRequest and records a ``spawn-requested`` event on
the parent artifact) when sigma(D) >= tau_spawn, D had at least min_queries
queries, D is not inside its cooldown since the last firing, and no adequate
specialist for D is registered (default: a child whose recipe domain is D in
state shadow, canary or champion).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from breedlab.ecosystem.config import SHIPPED, load_section
from breedlab.ecosystem.monitor import DomainStats, GapFn

ACTIVE_STATES = ("shadow", "canary", "champion")


@dataclass(frozen=True)
class DetectorConfig:
    w_volume: float = 0.7
    """Weight of D's share of the window's queries."""
    w_gap: float = 0.1
    """Weight of the parent's normalised gap on D."""
    w_savings: float = 0.2
    """Weight of the projected share of window compute saved by a child at ratio p."""
    gap_reference: float = 5.0
    """Gap that normalises to 1.0 (larger gaps are clipped), e.g. a mean NLL in nats."""
    tau_spawn: float = 0.3
    """sigma at or above which a spawn is requested."""
    cooldown_s: float = 3600.0
    """Seconds after firing for D during which D does not fire again."""
    ratio: float = 0.5
    """p: the child's share of the parent's non-embedding FLOPs per token."""
    min_queries: int = 20
    """A domain with fewer queries in the window is not scored (too little evidence)."""

    def __post_init__(self) -> None:
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.gap_reference <= 0 or self.cooldown_s < 0 or self.min_queries < 0:
            raise ValueError("gap_reference must be positive; cooldown_s and min_queries non-negative")


def load_detector_config(path: Path = SHIPPED) -> DetectorConfig:
    """The ``detector`` section of ``ecosystem.yaml`` (the shipped one by default)."""
    return load_section(DetectorConfig, "detector", path)


@dataclass(frozen=True)
class SpawnRequest:
    """A domain the detector wants a specialist for, with every input of its score."""

    domain: str
    sigma: float
    inputs: dict


def child_flops_per_token(parent_flops: float, head_flops: float, ratio: float) -> float:
    """F_child(p) = p * (F_parent - F_head) + F_head (see the module docstring)."""
    return ratio * (parent_flops - head_flops) + head_flops


def savings_share(stats: DomainStats, parent_flops: float, head_flops: float, ratio: float) -> float:
    """Fraction of the window's parent compute saved if D's tokens went to a child at ratio p."""
    if stats.window_tokens <= 0 or parent_flops <= 0:
        return 0.0
    saved = stats.tokens * (parent_flops - child_flops_per_token(parent_flops, head_flops, ratio))
    return saved / (stats.window_tokens * parent_flops)


def parent_nll_gap(model, tokenizer, *, seq_len: int = 32, max_blocks: int = 16) -> GapFn:
    """A gap_fn for the monitor: the parent's mean next-token NLL (nats) on D's window queries.

    The texts are cut into ``(N, seq_len)`` token blocks (at most ``max_blocks``, so the cost per
    window is bounded) and scored with ``evaluation.lm.score_lm``; too little text gives 0.0.
    """
    def gap(domain: str, texts: list[str]) -> float:
        from breedlab.cmg.blocks import token_blocks
        from breedlab.evaluation.lm import score_lm

        try:
            blocks = token_blocks(tokenizer, texts, seq_len=seq_len, max_blocks=max_blocks)
        except ValueError:  # not one block of text: no evidence of a gap
            return 0.0
        scores = score_lm(model, blocks)
        return scores.nll / max(1, scores.tokens)
    return gap


def registered_specialist(registry) -> Callable[[str], bool]:
    """Default adequacy test: any bred model (child, adapter, merged, ...) in an active state whose recipe
    names D as its domain, or among its ``domains`` (a merged specialist serves several). A quantized stack
    is read through its full-precision source, whose recipe says what the stack is for."""
    from breedlab.registry.lineage import full_precision

    def has_specialist(domain: str) -> bool:
        for state in ACTIVE_STATES:
            for model in registry.find(state=state):
                recipe = full_precision(registry, model).manifest.recipe
                if model.manifest.kind not in ("parent", "router-policy") and \
                        (recipe.get("domain") == domain or domain in (recipe.get("domains") or ())):
                    return True
        return False
    return has_specialist


class Detector:
    """Scores closed-window stats and requests spawns; remembers when each domain last fired."""

    def __init__(self, config: DetectorConfig, registry, parent_id: str, *, parent_flops_per_token: float,
                 head_flops_per_token: float, has_specialist: Callable[[str], bool] | None = None,
                 actor: str = "detector"):
        self.config, self.registry, self.parent_id, self.actor = config, registry, parent_id, actor
        self.parent_flops, self.head_flops = parent_flops_per_token, head_flops_per_token
        self.has_specialist = has_specialist or registered_specialist(registry)
        self.last_fired: dict[str, float] = {}

    def score(self, stats: DomainStats) -> tuple[float, dict]:
        """sigma(D) and every input it was computed from."""
        cfg = self.config
        gap = stats.parent_gap or 0.0  # no gap measured (no gap_fn) contributes nothing
        gap_norm = min(max(gap / cfg.gap_reference, 0.0), 1.0)
        savings = savings_share(stats, self.parent_flops, self.head_flops, cfg.ratio)
        sigma = cfg.w_volume * stats.volume_share + cfg.w_gap * gap_norm + cfg.w_savings * savings
        inputs = {
            "volume_share": stats.volume_share, "parent_gap": stats.parent_gap, "gap_normalised": gap_norm,
            "savings": savings, "tokens": stats.tokens, "window_tokens": stats.window_tokens,
            "queries": stats.queries, "breadth": stats.breadth, "window": stats.window,
            "parent_flops_per_token": self.parent_flops, "head_flops_per_token": self.head_flops,
            "weights": {"volume": cfg.w_volume, "gap": cfg.w_gap, "savings": cfg.w_savings},
            "tau_spawn": cfg.tau_spawn, "ratio": cfg.ratio, "config": asdict(cfg),
        }
        return sigma, inputs

    def observe(self, stats: list[DomainStats], now: float) -> list[SpawnRequest]:
        """Requests for the domains of one window that should get a child now (``now`` in seconds)."""
        requests = []
        for domain_stats in stats:
            request = self._consider(domain_stats, now)
            if request is not None:
                requests.append(request)
        return requests

    def _consider(self, stats: DomainStats, now: float) -> SpawnRequest | None:
        cfg = self.config
        if stats.queries < cfg.min_queries:
            return None
        sigma, inputs = self.score(stats)
        if sigma < cfg.tau_spawn:
            return None
        last = self.last_fired.get(stats.domain)
        if last is not None and now - last < cfg.cooldown_s:
            return None  # a request is already in flight; breeding takes longer than a window
        if self.has_specialist(stats.domain):
            return None
        self.last_fired[stats.domain] = now
        inputs = {**inputs, "sigma": sigma, "now": now}
        self.registry.record("spawn-requested", self.parent_id, actor=self.actor,
                             reason=f"sigma({stats.domain}) = {sigma:.3f} >= tau_spawn {cfg.tau_spawn}",
                             data={"domain": stats.domain, **inputs})
        return SpawnRequest(stats.domain, sigma, inputs)
