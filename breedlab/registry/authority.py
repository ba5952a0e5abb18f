"""Who may write what: the home's public keys, replayed from its signed key events, and the checks
``registry verify`` runs on every signature.

A home becomes signed by one ``adopted`` event: the public keys of its first identities (one role
each), signed by the approver key among them. From then on every event must carry a valid signature
(``Event.sig``) by an active key of the identity it names as actor, and authority events need the
right role: only an approver promotes or changes keys, an approver or the lifecycle steward retires,
rejects, demotes or rolls back, and only an evaluator registers evidence packets. Keys change only by
``key-added`` / ``key-revoked`` events an approver signed, so a process that can write the home but
holds no approver key cannot add a key of its own that ``verify`` accepts.

The trust anchor is the adopting approver key's fingerprint, pinned outside the home
(``verify --anchor``): without it an attacker able to rewrite the whole home could re-adopt it with
keys of their own from the first event on. Events before ``adopted`` (a home made before signatures)
are reported as unsigned, not as corrupt.
"""

from __future__ import annotations

from dataclasses import dataclass

from breedlab.registry.events import Event
from breedlab.registry.keys import ROLES, fingerprint, signature_holds

HOME = "home"
"""The ``artifact`` of events about the home itself rather than one artifact."""
KEY_EVENT_TYPES = ("adopted", "key-added", "key-revoked")
ROLES_FOR_EVENT = {
    "promoted": ("approver",),
    "demoted": ("approver", "lifecycle"),
    "rejected": ("approver", "lifecycle"),
    "retired": ("approver", "lifecycle"),
    "rolled-back": ("approver", "lifecycle"),
    "collected": ("approver", "lifecycle"),
    **{kind: ("approver",) for kind in KEY_EVENT_TYPES},
}
PACKET_KIND = "packet"
EVIDENCE_KINDS = (PACKET_KIND, "engine-check")
"""Kinds only an evaluator registers: packets, and the checks that let an engine serve a model."""


@dataclass
class PublicKey:
    identity: str
    role: str
    public: str
    added_seq: int
    active: bool = True

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public)


@dataclass
class Authority:
    """The replayed key table and what the replay found (problems break trust; notes do not)."""

    keys: dict[str, PublicKey]  # fingerprint -> key
    adopted_seq: int | None
    problems: list[str]
    notes: list[str]

    def active_key_of(self, identity: str) -> PublicKey | None:
        return next((k for k in self.keys.values() if k.identity == identity and k.active), None)


def roles_for(event: Event) -> tuple[str, ...] | None:
    """The roles that may sign ``event``; None: any identity, signing as itself."""
    if event.type == "registered" and event.data.get("kind") in EVIDENCE_KINDS:
        return ("evaluator",)
    return ROLES_FOR_EVENT.get(event.type)


def replay_authority(events: list[Event], anchor: str | None = None) -> Authority:
    """Replay key events and check every signature after adoption, in log order."""
    authority = Authority({}, None, [], [])
    for event in events:
        if authority.adopted_seq is None:
            if event.type == "adopted":
                _adopt(authority, event, anchor)
            continue
        problem = _signature_problem(authority, event)
        if problem:
            authority.problems.append(f"event {event.seq} ({event.type} {event.artifact[:12]}) "
                                      f"claims actor {event.actor!r}: {problem}")
        elif event.type in KEY_EVENT_TYPES:
            _apply_key_event(authority, event)
    _note_unsigned(authority, events, anchor)
    return authority


def _adopt(authority: Authority, event: Event, anchor: str | None) -> None:
    keys = {}
    for identity, entry in sorted(event.data.get("keys", {}).items()):
        key = PublicKey(identity, entry.get("role", ""), entry.get("public", ""), event.seq)
        keys[key.fingerprint] = key
    signer = keys.get((event.sig or {}).get("key", ""))
    label = f"event {event.seq} (adopted) claims actor {event.actor!r}"
    if signer is None or signer.identity != event.actor or signer.role != "approver":
        authority.problems.append(f"{label}: not signed by the approver key it adopts")
    elif not signature_holds(signer.public, event.signed_body(), event.sig["ed25519"]):
        authority.problems.append(f"{label}: the signature does not match the event")
    elif anchor and signer.fingerprint != anchor:
        authority.problems.append(f"{label}: adopted by key {signer.fingerprint[:16]}, not the trust anchor "
                                  f"{anchor[:16]}")
    bad_roles = sorted(k.identity for k in keys.values() if k.role not in ROLES)
    if bad_roles:
        authority.problems.append(f"{label}: unknown roles for {bad_roles}")
    authority.keys, authority.adopted_seq = keys, event.seq


def _signature_problem(authority: Authority, event: Event) -> str | None:
    if event.type == "adopted":
        return "the home was already adopted at event " + str(authority.adopted_seq)
    if not event.sig:
        return "it carries no signature"
    key = authority.keys.get(event.sig.get("key", ""))
    if key is None:
        return f"signed by key {event.sig.get('key', '')[:16]}, which no approver-signed key event added"
    if not key.active:
        return f"signed by {key.identity!r}'s key {key.fingerprint[:16]}, revoked or replaced before this event"
    if key.identity != event.actor:
        return f"signed by {key.identity!r}'s key, not {event.actor!r}'s"
    if not signature_holds(key.public, event.signed_body(), event.sig.get("ed25519", "")):
        return "the signature does not match the event (forged or altered)"
    allowed = roles_for(event)
    if allowed is not None and key.role not in allowed:
        return f"a {key.role} may not write {event.type!r} events (only {'/'.join(allowed)})"
    return None


def _apply_key_event(authority: Authority, event: Event) -> None:
    data = event.data
    if event.type == "key-revoked":
        if data.get("fingerprint") in authority.keys:
            authority.keys[data["fingerprint"]].active = False
        return
    key = PublicKey(data.get("identity", ""), data.get("role", ""), data.get("public", ""), event.seq)
    if key.role not in ROLES:
        authority.problems.append(f"event {event.seq} (key-added) gives {key.identity!r} unknown role {key.role!r}")
        return
    for old in authority.keys.values():
        if old.identity == key.identity and old.active:
            old.active = False  # one active key per identity: adding one rotates the old out
    authority.keys[key.fingerprint] = key


def _note_unsigned(authority: Authority, events: list[Event], anchor: str | None) -> None:
    if authority.adopted_seq is None:
        if events:
            authority.notes.append(f"the home is not adopted: its {len(events)} events are unsigned and nothing "
                                   "checks who wrote them (`breedlab keys init`)")
        return
    if authority.adopted_seq > 1:
        authority.notes.append(f"events 1-{authority.adopted_seq - 1} predate adoption and are unsigned")
    if anchor is None:
        adopter = next(e for e in events if e.seq == authority.adopted_seq)
        authority.notes.append(f"no trust anchor given: the adopting key {(adopter.sig or {}).get('key', '?')[:16]} is trusted "
                               "as found (pin it with `verify --anchor`)")
