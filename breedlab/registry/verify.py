"""Re-derive every hash in the registry from the files and name each problem.

``verify`` reads the files directly (never through the index), so it works on
a damaged registry. A *problem* means something committed was altered or
lost; a *note* is harmless debris, such as files a killed process wrote
before its commit, which nothing committed refers to.
"""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from contextlib import closing
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from breedlab.registry.authority import HOME, KEY_EVENT_TYPES, replay_authority
from breedlab.registry.canonical import sha256_bytes
from breedlab.registry.collected import collected_files
from breedlab.registry.errors import ManifestError, TransitionError
from breedlab.registry.events import Event, EventLog, chain_problems
from breedlab.registry.index import connect
from breedlab.registry.lifecycle import INITIAL_STATE, STATE_EVENT_TYPES, check_transition, has_lifecycle
from breedlab.registry.manifest import Manifest, parse
from breedlab.registry.objects import ObjectStore


@dataclass(frozen=True)
class Finding:
    level: str  # "problem" or "note"
    subject: str
    message: str


def verify(root: Path, on_bytes: Callable[[int], None] | None = None, *, anchor: str | None = None,
           expect_head: str | None = None) -> list[Finding]:
    """All findings for the registry at ``root``; ``on_bytes`` reports hashing progress.

    ``anchor``: the fingerprint of the approver key that adopted the home (the trust anchor, kept
    outside it); ``expect_head``: the hash of an event the log must still hold (a release packet's
    recorded head), which catches a history truncated and re-signed from there."""
    findings: list[Finding] = []
    log = EventLog(root)
    events, bad_lines = log.read()
    findings += [Finding("problem", "event log", f"unreadable {line}") for line in bad_lines]
    findings += [Finding("problem", "event log", text) for text in chain_problems(events, log.head())]
    authority = replay_authority(events, anchor)
    findings += [Finding("problem", "authority", text) for text in authority.problems]
    findings += [Finding("note", "authority", text) for text in authority.notes]
    if expect_head and expect_head not in {e.hash for e in events}:
        findings.append(Finding("problem", "event log", f"no event has the expected hash {expect_head[:16]}: "
                                                         "history was cut or rewritten"))
    manifests = _check_manifests(root, events, findings)
    collected = collected_files(events)
    if collected:
        count = sum(len(files) for files in collected.values())
        findings.append(Finding("note", "gc", f"{count} weight files of {len(collected)} retired artifacts are "
                                              "collected (manifests, events and packets kept; a re-breed restores them)"))
    live = {a: replace(m, files={r: e for r, e in m.files.items() if r not in collected.get(a, set())})
            for a, m in manifests.items()}
    _check_objects(root, live, findings, on_bytes)
    _check_states(events, manifests, findings)
    _check_index(root, events, manifests, findings)
    _note_debris(root, manifests, findings)
    return findings


def _label(artifact_id: str, manifest: Manifest | None = None) -> str:
    return f"{manifest.kind} {manifest.name} {artifact_id[:12]}" if manifest else artifact_id[:12]


def _check_manifests(root: Path, events: list[Event], findings: list[Finding]) -> dict[str, Manifest]:
    manifests: dict[str, Manifest] = {}
    for event in (e for e in events if e.type == "registered"):
        path = root / "manifests" / f"{event.artifact}.json"
        subject = _label(event.artifact) + f" ({event.data.get('kind')} {event.data.get('name')})"
        if not path.is_file():
            findings.append(Finding("problem", subject, "manifest file is missing"))
            continue
        raw = path.read_bytes()
        try:
            manifest = parse(raw, source=f"manifest {event.artifact[:12]}", check_id=False)
        except ManifestError as exc:
            findings.append(Finding("problem", subject, f"manifest is invalid: {exc}"))
            continue
        if manifest.id != event.artifact:
            findings.append(Finding("problem", subject, f"manifest was edited: its content hashes to {manifest.id[:12]}"))
        elif sha256_bytes(raw) != event.data.get("manifest_sha256"):
            findings.append(Finding("problem", subject, "manifest bytes differ from those registered (edited)"))
        for ref in (*manifest.parents, *manifest.data):
            if ref not in manifests:
                findings.append(Finding("problem", subject, f"refers to {ref[:12]}, not registered before it"))
        manifests[event.artifact] = manifest
    return manifests


def _check_objects(root: Path, manifests: dict[str, Manifest], findings: list[Finding],
                   on_bytes: Callable[[int], None] | None) -> None:
    store = ObjectStore(root / "objects")
    users: dict[str, list[str]] = defaultdict(list)
    for artifact_id, manifest in manifests.items():
        for rel, entry in manifest.files.items():
            users[entry.sha256].append(f"{_label(artifact_id, manifest)} file {rel}")
            _check_artifact_file(root / "artifacts" / artifact_id / rel, store, entry.sha256,
                                 f"{_label(artifact_id, manifest)}", rel, findings)
    for digest, used_by in sorted(users.items()):
        subject = "; ".join(used_by)
        if not store.has(digest):
            findings.append(Finding("problem", subject, f"object {digest[:12]} is missing"))
            continue
        actual = store.rehash(digest)
        if on_bytes:
            on_bytes(store.path(digest).stat().st_size)
        if actual != digest:
            findings.append(Finding("problem", subject, f"content changed: hashes to {actual[:12]}, not {digest[:12]}"))


def _check_artifact_file(path: Path, store: ObjectStore, digest: str, label: str, rel: str,
                         findings: list[Finding]) -> None:
    if not path.is_file():
        findings.append(Finding("problem", label, f"file {rel} is missing from the artifact folder"))
    elif store.has(digest) and not os.path.samefile(path, store.path(digest)):
        if sha256_bytes(path.read_bytes()) != digest:
            findings.append(Finding("problem", label, f"file {rel} in the artifact folder was changed"))


def _check_states(events: list[Event], manifests: dict[str, Manifest],
                  findings: list[Finding] | None) -> dict[str, str | None]:
    """Replay state events through the transition table; return each artifact's state."""
    states: dict[str, str | None] = {}
    found = findings if findings is not None else []
    for event in events:
        if event.type == "registered":
            kind = manifests[event.artifact].kind if event.artifact in manifests else event.data.get("kind", "")
            states[event.artifact] = INITIAL_STATE if has_lifecycle(kind) else None
        elif event.artifact == HOME and event.type in KEY_EVENT_TYPES:
            continue  # about the home's keys (registry/authority.py checks them)
        elif event.artifact not in states:
            found.append(Finding("problem", f"event {event.seq}", f"names unregistered {event.artifact[:12]}"))
        elif event.type in STATE_EVENT_TYPES:
            try:
                check_transition(states[event.artifact], event.data.get("to", ""), event.type, event.artifact)
                states[event.artifact] = event.data["to"]
            except TransitionError as exc:
                found.append(Finding("problem", f"event {event.seq}", str(exc)))
    return states


def _check_index(root: Path, events: list[Event], manifests: dict[str, Manifest],
                 findings: list[Finding]) -> None:
    """The index must equal a replay of the log up to the last event it has seen.

    Being behind is harmless (a writer died between its commit and the index
    update; the next open catches up); disagreeing or being ahead is not.
    """
    try:
        with closing(connect(root / "index.sqlite")) as conn:
            rows = {r["id"]: r["state"] for r in conn.execute("SELECT id, state FROM artifacts")}
            seen = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
    except sqlite3.Error as exc:
        findings.append(Finding("problem", "index", f"cannot read index.sqlite ({exc}); run reindex"))
        return
    if seen > len(events):
        findings.append(Finding("problem", "index", f"has seen {seen} events but the log holds {len(events)}"))
    elif rows != _check_states(events[:seen], manifests, None):
        findings.append(Finding("problem", "index", "disagrees with the manifests and events; run reindex"))
    elif seen < len(events):
        findings.append(Finding("note", "index", f"{len(events) - seen} events behind the log; caught up on next open"))


def _note_debris(root: Path, manifests: dict[str, Manifest], findings: list[Finding]) -> None:
    for path in sorted((root / "manifests").glob("*.json")):
        if path.stem not in manifests:
            findings.append(Finding("note", path.stem[:12], "manifest without a registered event (uncommitted)"))
    referenced = {e.sha256 for m in manifests.values() for e in m.files.values()}
    orphans = [d for d in ObjectStore(root / "objects").all_digests() if d not in referenced]
    if orphans:
        findings.append(Finding("note", "objects", f"{len(orphans)} objects no committed artifact uses"))
