"""Bounded archives: ``breedlab registry gc`` collects the weights of models nothing will serve again.

A retired or rejected model keeps its manifest, its events and its packets forever (lineage stays
whole); past the bound (the ``keep_retired`` most recently retired or rejected models are kept) its
weight files go, unless something may still need them: a model that is a parent of an active model,
or the model a niche's rollback would restore. Each collection is one ``collected`` event, the
commit point, written before any file is removed: a gc killed halfway leaves files that the next gc
removes, never an event that claims less than was removed. An object another live artifact shares
(content addressing) is kept. ``registry verify`` reports collected files as collected, not missing,
and registering the same recipe again (a re-breed) restores them under the same id.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from breedlab.governance.niche import ACTIVE_STATES, current_champion, previous_champion
from breedlab.registry import Registry
from breedlab.registry.collected import collected_files

WEIGHT_SUFFIXES = (".safetensors", ".gguf")
INACTIVE = ("retired", "rejected")


@dataclass(frozen=True)
class Collection:
    artifact: str
    name: str
    files: dict[str, str]  # relative name -> sha256
    bytes: int


def plan_gc(registry: Registry, keep_retired: int) -> list[Collection]:
    """What a gc would collect, oldest retirement first."""
    events, _ = registry.log.read()
    done = collected_files(events)
    last_change = {e.artifact: e.seq for e in events if e.type in ("retired", "rejected", "rolled-back")}
    inactive = sorted((a for state in INACTIVE for a in registry.find(state=state)),
                      key=lambda a: last_change.get(a.id, 0), reverse=True)
    needed = _still_needed(registry)
    plans = []
    for artifact in inactive[keep_retired:]:
        weights = {rel: e.sha256 for rel, e in artifact.manifest.files.items()
                   if rel.endswith(WEIGHT_SUFFIXES) and rel not in done.get(artifact.id, set())}
        if artifact.id in needed or not weights:
            continue
        size = sum(artifact.manifest.files[rel].size for rel in weights)
        plans.append(Collection(artifact.id, artifact.manifest.name, weights, size))
    return plans[::-1]


def collect(registry: Registry, keep_retired: int, *, actor: str = "lifecycle", dry_run: bool = False) -> list[Collection]:
    """Collect what ``plan_gc`` names: one ``collected`` event each, then its files and unshared objects."""
    plans = plan_gc(registry, keep_retired)
    if dry_run:
        return plans
    for plan in plans:
        registry.record("collected", plan.artifact, actor=actor,
                        reason=f"gc: retired past the bound of {keep_retired} kept",
                        data={"files": plan.files, "bytes": plan.bytes})
    remove_collected(registry)
    return plans


def remove_collected(registry: Registry) -> int:
    """Remove every file a ``collected`` event names that is still on disk (finishes a killed gc)."""
    events, _ = registry.log.read()
    gone = collected_files(events)
    in_use = {e.sha256 for a in registry.find() for rel, e in a.manifest.files.items()
              if rel not in gone.get(a.id, set())}
    removed = 0
    with registry.writing():
        for artifact_id, files in gone.items():
            manifest = registry.load_manifest(artifact_id)
            for rel in files:
                (registry.artifacts_dir / artifact_id / rel).unlink(missing_ok=True)
                digest = manifest.files[rel].sha256
                if digest not in in_use and registry.objects.has(digest):
                    os.unlink(registry.objects.path(digest))
                    removed += 1
    return removed


def _still_needed(registry: Registry) -> set[str]:
    """Models whose weights may be needed again: parents of active models, and rollback targets."""
    needed = set()
    for state in (*ACTIVE_STATES, "candidate"):
        for artifact in registry.find(state=state):
            needed.update(artifact.manifest.parents)
    for niche in _niches(registry):
        champion = current_champion(registry, niche)
        previous = previous_champion(registry, niche, champion) if champion else None
        if previous is not None:
            needed.add(previous.id)
    return needed


def _niches(registry: Registry) -> set[str]:
    events, _ = registry.log.read()
    return {e.data["niche"] for e in events if isinstance(e.data.get("niche"), str)}


def describe(plans: list[Collection]) -> list[tuple[str, str, int, int]]:
    """Rows for the CLI: artifact prefix, name, files, bytes."""
    return [(p.artifact[:12], p.name, len(p.files), p.bytes) for p in plans]


