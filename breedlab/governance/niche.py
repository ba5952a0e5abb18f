"""A niche's state, read from the event log: its champion, its active children, its history.

Promotion events carry ``data["niche"]``; nothing else stores which model
serves a niche, so the log is the single source of truth and a rollback is
just two more events.
"""

from __future__ import annotations

from breedlab.registry import Artifact, Event, Registry

ACTIVE_STATES = ("shadow", "canary", "champion")
GOVERNANCE_EVENTS = ("promoted", "demoted", "rejected", "retired", "rolled-back")


def niche_events(registry: Registry, niche: str) -> list[Event]:
    """Every governance event of ``niche``, oldest first."""
    events, _ = registry.log.read()
    return [e for e in events if e.type in GOVERNANCE_EVENTS and e.data.get("niche") == niche]


def current_champion(registry: Registry, niche: str) -> Artifact | None:
    """The model last made champion of ``niche`` that still is one; None means the parent (no-op) serves it."""
    for event in reversed(niche_events(registry, niche)):
        if event.data.get("to") == "champion":
            artifact = registry.get(event.artifact)
            if artifact.state == "champion":
                return artifact
    return None


def previous_champion(registry: Registry, niche: str, current: Artifact) -> Artifact | None:
    """The champion before ``current``: the latest other model crowned in this niche, now retired."""
    for event in reversed(niche_events(registry, niche)):
        if event.data.get("to") == "champion" and event.artifact != current.id:
            artifact = registry.get(event.artifact)
            return artifact if artifact.state == "retired" else None
    return None


def active_children(registry: Registry, niche: str) -> list[Artifact]:
    """Non-parent models of ``niche`` in shadow, canary or champion state."""
    ids = {e.artifact for e in niche_events(registry, niche)}
    artifacts = [registry.get(i) for i in sorted(ids)]
    return [a for a in artifacts if a.state in ACTIVE_STATES and a.manifest.kind != "parent"]


def all_active_children(registry: Registry) -> list[Artifact]:
    """Non-parent models in shadow, canary or champion state, whatever their niche."""
    return [a for state in ACTIVE_STATES for a in registry.find(state=state)
            if a.manifest.kind not in ("parent", "router-policy")]


def active_weight_bytes(registry: Registry) -> int:
    """Weight bytes of every active model (any niche), each counted once."""
    total = 0
    for state in ACTIVE_STATES:
        for artifact in registry.find(state=state):
            total += sum(e.size for name, e in artifact.manifest.files.items() if name.endswith(".safetensors"))
    return total


def breeder_of(registry: Registry, artifact_id: str) -> str:
    """The identity that registered the artifact (the actor of its ``registered`` event)."""
    return next(e.actor for e in registry.events(artifact_id) if e.type == "registered")


def champion_parent(registry: Registry, *, or_newest: bool = True) -> Artifact | None:
    """The champion parent; else, with ``or_newest``, the newest parent; None when there is none."""
    parents = registry.find(kind="parent", state="champion")
    if not parents and or_newest:
        parents = registry.find(kind="parent")
    return parents[0] if parents else None
