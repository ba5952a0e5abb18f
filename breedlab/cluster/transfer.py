"""How work crosses between the head's registry and a worker's own home: by content hash, on a shared path.

The head never hands a worker its registry. A worker gets *records* (manifests as plain values) and the
path of the head's ``registry/objects`` folder, whose files are named by their sha256 and read-only once
stored. It registers the records in a home of its own, in ancestry order, so every id comes out as the
head's (the id is a hash of the identity fields and the files' hashes; nothing else). Same file system:
hard links, no copy. Otherwise: a copy, hashed on the way.

Why a shared path and not Ray's object store: the worker's home must outlive the worker (a retried task
resumes from the checkpoints its first attempt left there, possibly on another node), so a durable shared
folder is needed anyway; the parent is 540 MB, which the object store would serialise into shared memory
per node for every task; and content-addressed files are immutable, so any shared file system (NFS, a
read-only sync of ``objects/``) serves them without locks.

Back to the head: what the worker registered after its seed, in its registration order, plus the events
a breed records about it (its cost). The head checks every file's sha256 against the record before it
registers anything, registers each record itself (the one writer, signing as its own identity), and
checks that the id it computed is the worker's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable

from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_file

REPLAYED_EVENTS = ("breed-cost",)
"""Events about a new artifact that the head records again (a breed's cost); no state ever crosses."""


def closure(registry: Registry, ids: Iterable[str]) -> list[Artifact]:
    """The artifacts ``ids`` and all their ancestors (parents and data), ancestors first."""
    ordered: dict[str, Artifact] = {}

    def visit(ref: str, path: tuple[str, ...]) -> None:
        artifact = registry.get(ref)
        if artifact.id in ordered:
            return
        if artifact.id in path:
            raise RegistryError(f"ancestry cycle at {artifact.id[:12]}")
        for upstream in (*artifact.manifest.parents, *artifact.manifest.data):
            visit(upstream, (*path, artifact.id))
        ordered[artifact.id] = artifact

    for ref in ids:
        visit(ref, ())
    return list(ordered.values())


def records_of(artifacts: Iterable[Artifact]) -> list[dict[str, Any]]:
    """Plain-value records (JSON- and Ray-serialisable) of ``artifacts``: the manifest plus its id."""
    return [{"id": artifact.id, **artifact.manifest.to_dict()} for artifact in artifacts]


def register_records(registry: Registry, records: list[dict[str, Any]], objects_dir: Path | str, *,
                     actor: str | None = None, expect_ids: bool = True, precheck: bool = True) -> list[Artifact]:
    """Register ``records`` (ancestors first), their files read from ``objects_dir`` by sha256.

    Every file is hashed against its record before anything is registered (``precheck``; a worker's
    scratch home skips it: the store hashes each file as it takes it, and a wrong id still raises), and
    every id the registry computes must be the record's: a mismatch raises and names both ids
    (``expect_ids=False``: a record the caller changed on purpose, a search's winner given the search
    as data). The model card travels like any file: ``register`` keeps a supplied README.md, so an
    artifact whose card was not rendered by this version (a hub folder's own README) keeps its id."""
    objects_dir = Path(objects_dir)
    for record in records if precheck else ():
        for rel, entry in record["files"].items():
            source = _object(objects_dir, entry["sha256"])
            if not source.is_file() or sha256_file(source) != entry["sha256"]:
                raise RegistryError(f"{record['kind']} {record['name']} ({record['id'][:12]}): file {rel} is "
                                    f"missing or does not hash to {entry['sha256'][:12]}; nothing was registered")
    made = []
    for record in records:
        artifact = _register_one(registry, record, objects_dir, actor)
        if expect_ids and artifact.id != record["id"]:
            raise RegistryError(f"{record['kind']} {record['name']}: the worker computed {record['id'][:12]} and "
                                f"this registry computed {artifact.id[:12]}")
        made.append(artifact)
    return made


def _object(objects_dir: Path, digest: str) -> Path:
    return objects_dir / digest[:2] / digest


def _register_one(registry: Registry, record: dict[str, Any], objects_dir: Path, actor: str | None) -> Artifact:
    staging = registry.root / "objects" / "tmp"
    staging.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=staging, prefix=".tmp-import-") as scratch:
        files = {}
        for number, (rel, entry) in enumerate(record["files"].items()):
            files[rel] = Path(scratch) / str(number)
            _link_or_copy(_object(objects_dir, entry["sha256"]), files[rel])
        return registry.register(record["kind"], record["name"], files, operator=record["operator"],
                                 recipe=record["recipe"], parents=record["parents"], data=record["data"],
                                 metrics=record["metrics"], actor=actor, move=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """A hard link (the store moves it in: no byte is copied); a copy across file systems."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def new_since(registry: Registry, seeded: set[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What a worker's registry holds beyond its seed: the records in registration order, and the
    replayed events (``REPLAYED_EVENTS``) about them."""
    records, events = [], []
    for event in registry.events():
        if event.artifact in seeded:
            continue
        if event.type == "registered":
            records.append(records_of([registry.get(event.artifact)])[0])
        elif event.type in REPLAYED_EVENTS:
            events.append({"type": event.type, "artifact": event.artifact, "reason": event.reason, "data": event.data})
    return records, events


def replay_events(registry: Registry, events: list[dict[str, Any]], *, actor: str) -> None:
    """Record each event, unless the registry already holds it (a shipment imported twice, after a crash
    between its import and its home's removal, must not count a breed's cost twice)."""
    for event in events:
        held = registry.events(event["artifact"])
        if any(e.type == event["type"] and e.data == event["data"] for e in held):
            continue
        registry.record(event["type"], event["artifact"], actor=actor, reason=event["reason"], data=event["data"])
