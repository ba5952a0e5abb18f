"""Shadow, canary, champion: a child earns live traffic in steps, on paired live evidence.

After the lab's evidence packet and an approver's ``promote --to shadow``:

* **shadow**: the child answers a copy of every query routed to its niche;
  the answer is scored (its NLL on the query) and never returned. Each pair is
  (child NLL, NLL of the model that really served it) on the same text.
* **canary**: a fixed share of the niche's routed queries (chosen by a seeded
  hash of the text, so a query always lands on the same side) is served by the
  child; the champion scores those in shadow for the pair.
* **champion**: crowned by the approver; the live delta at crowning becomes
  the baseline revalidation compares against.

Verdicts (all thresholds in ``RolloutConfig``; delta = child NLL - champion NLL):
  shadow -> canary when the ``confidence`` bootstrap interval of the mean delta
  lies below ``max_live_regression``; shadow -> rejected when its lower bound lies
  above it. canary -> champion after ``canary_windows`` when the mean delta is at
  most ``max_live_regression``; otherwise the canary is rolled back on the spot,
  automatically, by the lifecycle identity (a safety action needs no approver; a
  promotion does). With ``min_approval`` set, canary -> champion also needs the
  Wilson lower bound of people's approval of the canary's answers to reach it
  (``approval_gate``). Each verdict is one event whose reason carries the numbers.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

from breedlab.ecosystem.config import SHIPPED, load_section
from breedlab.evaluation.stats import paired_bootstrap


@dataclass(frozen=True)
class RolloutConfig:
    shadow_windows: int = 1
    """Windows a shadow child answers a copy of its niche's traffic before the verdict."""
    min_shadow_queries: int = 8
    """Paired shadow scores needed before any verdict."""
    canary_share: float = 0.3
    """Share of the niche's routed traffic the canary serves."""
    canary_windows: int = 1
    """Windows the canary serves before it may be crowned."""
    min_canary_queries: int = 4
    """Canary queries needed before a verdict."""
    max_live_regression: float = 0.05
    """nats/token the child may be worse than the champion on the same live queries."""
    confidence: float = 0.95
    seed: int = 0
    min_approval: float | None = None
    """If set, a canary is crowned only when the Wilson lower bound (at ``confidence``) of its live
    approval rate, from people's ratings of its answers (``feedback.py``), reaches this. None: no gate."""
    min_ratings: int = 20
    """Ratings of the canary's answers needed before the approval gate can pass."""

    def __post_init__(self) -> None:
        if not 0.0 < self.canary_share < 1.0:
            raise ValueError(f"canary_share must lie in (0, 1), got {self.canary_share}")
        if min(self.shadow_windows, self.canary_windows) < 1:
            raise ValueError("shadow_windows and canary_windows must be at least 1")


def load_rollout_config(path=SHIPPED) -> RolloutConfig:
    return load_section(RolloutConfig, "rollout", path)


@dataclass
class Rollout:
    """One child on its way from shadow to champion in one niche."""

    child: str
    niche: str
    stage: str = "shadow"
    windows: int = 0
    """Closed windows in the current stage."""
    child_nll: list[float] = field(default_factory=list)
    champion_nll: list[float] = field(default_factory=list)

    def add_pair(self, child_nll: float, champion_nll: float) -> None:
        if math.isfinite(child_nll) and math.isfinite(champion_nll):
            self.child_nll.append(child_nll)
            self.champion_nll.append(champion_nll)

    def mean_delta(self) -> float:
        return sum(c - p for c, p in zip(self.child_nll, self.champion_nll)) / max(1, len(self.child_nll))

    def next_stage(self, stage: str) -> None:
        self.stage, self.windows = stage, 0
        self.child_nll, self.champion_nll = [], []


def takes_canary(text: str, config: RolloutConfig) -> bool:
    """Whether the canary serves this query: a seeded hash of its text below ``canary_share``."""
    digest = hashlib.sha256(f"{config.seed}:{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < config.canary_share


@dataclass(frozen=True)
class Verdict:
    """What the rollout's numbers say at a window's close: advance, hold, reject or roll back."""

    action: str
    """'advance' | 'hold' | 'reject' | 'rollback'."""
    reason: str
    data: dict


def approval_gate(config: RolloutConfig, approval) -> tuple[bool, str]:
    """(passes, why) for the canary -> champion approval gate; passes when the config sets none."""
    if config.min_approval is None:
        return True, "no approval gate"
    if approval is None or approval.ratings < config.min_ratings:
        got = 0 if approval is None else approval.ratings
        return False, f"approval gate: {got} of {config.min_ratings} ratings needed so far"
    bound = approval.bound(config.confidence)
    text = (f"approval {approval.up}/{approval.ratings} = {approval.rate:.2f}, {config.confidence:.0%} lower bound "
            f"{bound:.3f}")
    if bound < config.min_approval:
        return False, f"{text} < {config.min_approval}: approval gate not met"
    return True, f"{text} >= {config.min_approval}"


def judge(rollout: Rollout, config: RolloutConfig, approval=None) -> Verdict:
    """Apply the rule in the module docstring to a rollout whose window just closed; ``approval``
    (``feedback.Approval`` of the canary's answers) is read by the approval gate, when one is set."""
    rollout.windows += 1
    n, limit = len(rollout.child_nll), config.max_live_regression
    if rollout.stage == "shadow":
        if rollout.windows < config.shadow_windows or n < config.min_shadow_queries:
            return Verdict("hold", f"shadow: {n} paired queries so far", {"queries": n})
        result = paired_bootstrap(rollout.champion_nll, rollout.child_nll, confidence=config.confidence,
                                  seed=config.seed)
        data = {"queries": n, "mean_delta": result.mean_diff, "ci": [result.low, result.high], "limit": limit}
        text = (f"shadow on {n} live {rollout.niche} queries: child - champion NLL {result.mean_diff:+.4f} nats/token, "
                f"{config.confidence:.0%} CI [{result.low:+.4f}, {result.high:+.4f}]")
        if result.high <= limit:
            return Verdict("advance", f"{text} <= {limit:+.2f}", data)
        if result.low > limit:
            return Verdict("reject", f"{text} > {limit:+.2f}: worse than the champion on live traffic", data)
        return Verdict("hold", f"{text}: not yet conclusive", data)
    mean = rollout.mean_delta()
    data = {"queries": n, "mean_delta": mean, "limit": limit}
    text = f"canary on {n} live {rollout.niche} queries: child - champion NLL {mean:+.4f} nats/token"
    if n >= config.min_canary_queries and mean > limit:
        return Verdict("rollback", f"{text} > {limit:+.2f}: gate max_live_regression broken", data)
    if rollout.windows < config.canary_windows or n < config.min_canary_queries:
        return Verdict("hold", f"{text} so far", data)
    approved, why = approval_gate(config, approval)
    if not approved:
        return Verdict("hold", f"{text} <= {limit:+.2f}; {why}", data)
    return Verdict("advance", f"{text} <= {limit:+.2f}" + ("" if config.min_approval is None else f"; {why}"), data)
