"""Which model answers one query, and why: the one routing rule of the replay and the server.

The router policy scores the text over its niches; below the calibrated threshold, or
about a domain the parent keeps, or in a niche without a champion child, the parent
serves (the no-op route); a niche with a canary gives it ``rollout.canary_share`` of its
confident traffic (``rollout.takes_canary``, a seeded hash of the text, so a query always
lands on the same side). ``Ecosystem.serve`` (the demo's replay) and the server's ``auto``
model both call ``decide``.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.ecosystem.rollout import RolloutConfig, takes_canary


@dataclass(frozen=True)
class Decision:
    """Where one request goes and why (before any load fallback)."""

    requested: str
    model_id: str
    route: str
    """The niche for confident ``auto`` traffic, 'parent' for the no-op route, 'explicit' for a named model."""
    confidence: float | None
    reason: str
    niche: str | None = None
    """The niche whose shadow/canary child sees this request (confident ``auto`` traffic only)."""
    canary: bool = False


def decide(policy, text: str, route, stages: dict[str, tuple[str, str]], rollout: RolloutConfig,
           parent_id: str) -> Decision:
    """Route one query by ``route``, the policy's ``Route`` for ``text`` (the module docstring);
    ``stages`` maps a niche to its (child, stage) in shadow or canary."""
    numbers = f"{route.domain} confidence {route.confidence:.3f}, threshold {policy.threshold:.3f}"
    if route.confidence < policy.threshold:
        return Decision("auto", parent_id, "parent", route.confidence,
                        f"{numbers}: below the calibrated threshold, the parent serves (no-op route)")
    if not policy.leaves_parent(route.domain, route.confidence):  # a parent domain learnt as a class
        return Decision("auto", parent_id, "parent", route.confidence,
                        f"{numbers}: the parent's own domain, the parent serves (no-op route)")
    child, stage = stages.get(route.domain, (None, None))
    if stage == "canary" and takes_canary(text, rollout):
        return Decision("auto", child, route.domain, route.confidence,
                        f"{numbers}: canary {child[:12]} takes {rollout.canary_share:.0%} of {route.domain} traffic",
                        niche=route.domain, canary=True)
    if route.target is not None:
        return Decision("auto", route.target, route.domain, route.confidence,
                        f"{numbers}: the {route.domain} champion serves", niche=route.domain)
    return Decision("auto", parent_id, route.domain, route.confidence,
                    f"{numbers}: no champion child for {route.domain}, the parent serves (no-op route)",
                    niche=route.domain)
