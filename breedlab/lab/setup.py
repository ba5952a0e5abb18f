"""What a lab needs in a home before it breeds: the champion parent and the corpora.

Both the ``breedlab lab`` command and the demo start here; each crowns a freshly
imported parent under its own identity (``LAB_ACTOR``, the demo's ``DEMO_ACTOR``),
so the event log says who made the parent the general champion.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from breedlab.governance.niche import champion_parent
from breedlab.home import Home
from breedlab.registry import Artifact, Registry

LAB_ACTOR = "breedlab-lab"
"""The identity ``breedlab lab`` crowns an imported parent as."""


def ensure_parent_and_data(console: Console, home: Home, registry: Registry, *, actor: str,
                           domains: list[str] | None = None, parent_source: str = "smollm2") -> Artifact:
    """The champion parent (imported and crowned by ``actor`` if needed) and the corpora the caller needs."""
    from breedlab.data.build import build_corpora
    from breedlab.data.report import print_build_report
    from breedlab.models.parent import import_parent

    parent = champion_parent(registry, or_newest=False) or crown_parent(
        registry, import_parent(registry, parent_source, cache_dir=home.cache_dir), actor=actor)
    missing = [d for d in (domains or []) if not registry.find(kind="dataset", name=f"{d}/test")]
    if missing or domains is None:
        print_build_report(console, build_corpora(home, registry, domains=missing or None))
    return parent


def lab_identities(registry: Registry, home: Home, keys: Path | None = None) -> str:
    """Set ``registry`` up to act as the lab; returns who crowns a freshly imported parent. Unsigned: the
    lab itself. Signed: the key folder's keys, registrations (the parent, corpora) by the breeder, and
    the crowning by an approver (a promotion is an approver's act there; its key must be at hand)."""
    from breedlab.governance.config import load_governance
    from breedlab.registry.keys import available_keys

    if not registry.adopted():
        return LAB_ACTOR
    governance = load_governance(home.root)
    registry.signers, registry.actor = available_keys(keys), governance.breeder
    return governance.approvers[0]


def crown_parent(registry: Registry, parent: Artifact, *, actor: str) -> Artifact:
    """A freshly imported parent becomes the champion: the route every query takes until a child earns one."""
    if parent.state == "candidate":
        registry.transition(parent.id, "champion", event_type="promoted", actor=actor,
                            reason="imported parent is the general champion and the no-op route")
    return registry.get(parent.id)
