"""The append-only, hash-chained event log.

``events.jsonl`` holds one canonical-JSON event per line. Each event carries
``prev``, the hash of the event before it (64 zeros for the first), and its
own ``hash`` over everything else, so deleting, editing or reordering any
event breaks the chain at that point. ``HEAD`` records the last committed
``seq`` and hash, so deleting events from the *end* of the log is detected
too (the chain alone cannot see a missing tail).

Appending one line with a single ``write`` is the commit point of every
registry change: the manifest and objects are written first, then the event.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from breedlab.registry.atomic import append_line_durably, atomic_write_bytes
from breedlab.registry.canonical import canonical_json, sha256_json
from breedlab.registry.keys import SigningKey

GENESIS = "0" * 64
TAIL_WINDOW = 1 << 16  # bytes read from the end to find the last event


def utc_now(*, seconds: bool = False) -> str:
    """Now in UTC, ISO 8601 with a Z: to the microsecond (events, manifests), or to the second
    (``seconds``: when evidence was taken, a demo's timeline)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ" if seconds else "%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Event:
    """One committed change. ``data`` holds the type-specific details."""

    seq: int
    ts: str
    type: str
    artifact: str
    actor: str
    reason: str
    prev: str
    data: dict[str, Any] = field(default_factory=dict)
    hash: str = ""
    sig: dict[str, str] | None = None
    """The actor's signature of ``signed_body`` (``registry/keys.py``); None on an unsigned event, and
    then absent from the line, so events written before signatures keep their bytes and hashes."""

    def signed_body(self) -> dict[str, Any]:
        """What the actor signs: everything but the hash and the signature."""
        # Field by field, not with asdict (a deep copy): verify calls this twice per event.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("hash", "sig")}

    def body(self) -> dict[str, Any]:
        """What the hash covers: the signed body and the signature, so the chain pins signatures too."""
        return {**self.signed_body(), **({"sig": self.sig} if self.sig is not None else {})}

    def line(self) -> bytes:
        return canonical_json({**self.body(), "hash": self.hash}) + b"\n"

    def expected_hash(self) -> str:
        return sha256_json(self.body())


@dataclass(frozen=True)
class Draft:
    """An event to append: the log fills in its sequence number, time, chain link and signature."""

    type: str
    artifact: str
    actor: str
    reason: str
    data: dict | None = None
    signer: SigningKey | None = None


class EventLog:
    def __init__(self, directory: Path):
        self.path = directory / "events.jsonl"
        self.head_path = directory / "HEAD"

    def read(self) -> tuple[list[Event], list[str]]:
        """All committed events in file order, and the lines that did not parse.

        A last line without its newline is a torn write (power loss mid-append):
        it was never committed and is ignored, not reported.
        """
        if not self.path.exists():
            return [], []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        lines.pop()  # after the final newline: empty, or a torn uncommitted tail
        events, bad = [], []
        for number, line in enumerate(lines, start=1):
            try:
                events.append(Event(**json.loads(line)))
            except (json.JSONDecodeError, UnicodeDecodeError, TypeError) as exc:
                bad.append(f"line {number}: {exc}")
        return events, bad

    def last(self) -> Event | None:
        """The last committed event, read from the end of the file (O(1) in log size)."""
        if not self.path.exists():
            return None
        with open(self.path, "rb") as stream:
            size = stream.seek(0, os.SEEK_END)
            stream.seek(max(0, size - TAIL_WINDOW))
            tail = stream.read()
        complete = tail[: tail.rfind(b"\n") + 1]
        lines = [line for line in complete.split(b"\n") if line]
        return Event(**json.loads(lines[-1])) if lines else None

    def repair_torn_tail(self) -> None:
        """Cut an uncommitted partial last line (call only under the registry lock)."""
        if not self.path.exists():
            return
        raw = self.path.read_bytes()
        keep = raw.rfind(b"\n") + 1
        if keep != len(raw):
            with open(self.path, "r+b") as stream:
                stream.truncate(keep)
                os.fsync(stream.fileno())

    def append_all(self, drafts: list[Draft]) -> list[Event]:
        """Commit events as one (call only under the registry lock): chained and signed, then appended
        with a single ``write`` and one fsync, so a killed process leaves all of them or none (a power
        loss can still tear the write; the reader then keeps the whole lines before the tear)."""
        self.repair_torn_tail()
        last, events = self.last(), []
        for draft in drafts:
            if draft.signer is not None and draft.signer.identity != draft.actor:
                raise ValueError(f"{draft.signer.identity!r}'s key cannot sign an event of {draft.actor!r}")
            event = Event(seq=(last.seq + 1) if last else 1, ts=utc_now(), type=draft.type, artifact=draft.artifact,
                          actor=draft.actor, reason=draft.reason, prev=last.hash if last else GENESIS,
                          data=dict(draft.data or {}))
            if draft.signer is not None:
                event = replace(event, sig=draft.signer.sign(event.signed_body()))
            last = replace(event, hash=event.expected_hash())
            events.append(last)
        append_line_durably(self.path, b"".join(event.line() for event in events))
        atomic_write_bytes(self.head_path, canonical_json({"seq": last.seq, "hash": last.hash}) + b"\n")
        return events

    def head(self) -> dict[str, Any] | None:
        if not self.head_path.exists():
            return None
        return json.loads(self.head_path.read_bytes())


def chain_problems(events: list[Event], head: dict[str, Any] | None) -> list[str]:
    """Every break in the chain, each naming the event (and artifact) where it shows."""
    problems, prev_hash = [], GENESIS
    for position, event in enumerate(events, start=1):
        label = f"event {event.seq} ({event.type} {event.artifact[:12]})"
        if event.hash != event.expected_hash():
            problems.append(f"{label}: content does not match its hash (edited)")
        if event.seq != position:
            problems.append(f"{label}: expected seq {position}; an event was deleted, inserted or moved")
        if event.prev != prev_hash:
            problems.append(f"{label}: prev does not match the event before it (deleted or reordered)")
        prev_hash = event.hash
    if head is not None:
        last_seq = events[-1].seq if events else 0
        if head.get("seq", 0) > last_seq:
            problems.append(f"log ends at event {last_seq} but HEAD records {head['seq']}: events deleted from the end")
        elif head.get("seq") and {e.seq: e.hash for e in events}.get(head["seq"]) != head.get("hash"):
            problems.append(f"event {head['seq']} does not match the hash recorded in HEAD")
    elif events:
        problems.append("HEAD is missing although the log has events")
    return problems
