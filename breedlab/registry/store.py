"""The registry: content-addressed artifacts, manifests, events and lifecycle.

On-disk layout under the registry folder::

    objects/ab/<sha256>     every file, once, read-only
    artifacts/<id>/...      hard links to objects under their real names
    manifests/<id>.json     canonical manifest (id = sha256 of identity fields)
    events.jsonl, HEAD      the hash-chained event log and its head
    index.sqlite            query cache, rebuildable from the files
    lock                    flock serialising writers across processes

Registering writes objects, then the artifact folder, then the manifest (each
atomically), and commits by appending the ``registered`` event. A process
killed before the commit leaves at most files that no committed event names:
the artifact is wholly there or not there at all.
"""

from __future__ import annotations

import platform
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator, Mapping

from breedlab import __version__
from breedlab.registry import index
from breedlab.registry.atomic import atomic_write_bytes, exclusive_lock
from breedlab.registry.authority import HOME, KEY_EVENT_TYPES
from breedlab.registry.canonical import sha256_bytes
from breedlab.registry.collected import collected_files
from breedlab.registry.errors import NotFoundError, RegistryError
from breedlab.registry.events import Draft, Event, EventLog, utc_now
from breedlab.registry.folders import CARD_NAME, materialise, with_card
from breedlab.registry.keys import KEYS_ENV, KeyFileError, SigningKey, available_keys, key_dir
from breedlab.registry.lifecycle import STATE_EVENT_TYPES, Move, check_transition
from breedlab.registry.manifest import FileEntry, Manifest, parse, validate, validate_header
from breedlab.registry.objects import ObjectStore
from breedlab.registry.safety import checked_sources


@dataclass(frozen=True)
class Artifact:
    """A committed artifact: its id, manifest, folder and current lifecycle state."""

    id: str
    manifest: Manifest
    path: Path
    state: str | None


class Registry:
    def __init__(self, root: Path, signers: dict[str, SigningKey] | None = None, actor: str = "breedlab"):
        self.root = root
        self.actor = actor
        """The identity this process acts as: the actor of registrations that name none."""
        self.signers = signers
        """Private keys this process signs with, by identity (None: loaded from the key folder when the
        home is adopted and an event must be signed; ``registry/keys.py``)."""
        self.objects = ObjectStore(root / "objects")
        self.log = EventLog(root)
        self.artifacts_dir = root / "artifacts"
        self.manifests_dir = root / "manifests"
        self.index_path = root / "index.sqlite"
        self.lock_path = root / "lock"

    @classmethod
    def open(cls, root: Path, signers: dict[str, SigningKey] | None = None, actor: str = "breedlab") -> "Registry":
        """Open (creating if needed) the registry at ``root``; bring its index up to date."""
        root = Path(root)
        for sub in ("objects", "artifacts", "manifests"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        registry = cls(root, signers, actor)
        with registry.writing():
            pass  # taking the lock migrates and catches up the index
        return registry

    @contextmanager
    def writing(self) -> Iterator[None]:
        """Hold the writer lock; on entry repair a torn log tail and sync the index."""
        with exclusive_lock(self.lock_path):
            self.log.repair_torn_tail()
            self._sync_index()
            yield

    # ----- registering ---------------------------------------------------------------

    def register(
        self,
        kind: str,
        name: str,
        files: Mapping[str, Path],
        *,
        operator: str,
        recipe: dict[str, Any],
        parents: tuple[str, ...] | list[str] = (),
        data: tuple[str, ...] | list[str] = (),
        metrics: dict[str, Any] | None = None,
        actor: str | None = None,
        move: bool = False,
    ) -> Artifact:
        """Store ``files`` (relative name -> path) as one artifact and commit it.

        Registering identical content again returns the existing artifact and
        writes nothing. ``move=True`` lets the store take the files by rename.
        """
        draft = validate_header(Manifest(
            kind=kind, name=name, files={}, operator=operator, recipe=recipe,
            parents=tuple(parents), data=tuple(data), created=utc_now(),
            breedlab_version=__version__, host=platform.node(), metrics=dict(metrics or {}),
        ))
        sources, actor = checked_sources(files), actor or self.actor
        with self.writing():
            for ref in (*parents, *data):
                self.get(ref)  # every parent and data id must already be committed
            entries = {rel: FileEntry(*self.objects.put(path, move=move)) for rel, path in sources.items()}
            manifest = validate(replace(draft, files=entries))
            if CARD_NAME not in entries:
                manifest = with_card(self.objects, manifest)
            if self._committed(manifest.id):
                return self._restored(self.get(manifest.id), actor)
            materialise(self.objects, self.artifacts_dir, manifest)
            raw = manifest.to_json()
            atomic_write_bytes(self.manifests_dir / f"{manifest.id}.json", raw, mode=0o444)
            event = self._append(
                "registered", manifest.id, actor=actor, reason=f"{operator} made {kind} {name}",
                data={"kind": kind, "name": name, "manifest_sha256": sha256_bytes(raw)},
            )
            self._apply([event])
            return self.get(manifest.id)

    def _restored(self, artifact: Artifact, actor: str) -> Artifact:
        """A committed artifact registered again: if a gc collected files of it, the objects were just
        stored again, so its folder is rebuilt and a ``restored`` event records it."""
        if not self.collected(artifact.id):
            return artifact
        materialise(self.objects, self.artifacts_dir, artifact.manifest)
        self._apply([self._append("restored", artifact.id, actor=actor, reason="registered again after gc",
                                  data={"files": sorted(artifact.manifest.files)})])
        return self.get(artifact.id)

    # ----- lifecycle -----------------------------------------------------------------

    def transition(self, artifact_id: str, to: str, *, event_type: str, actor: str, reason: str,
                   data: dict[str, Any] | None = None) -> Event:
        """Move an artifact to state ``to`` by appending one state event."""
        return self.transitions([Move(artifact_id, to, event_type, actor, reason, data)])[0]

    def transitions(self, moves: list[Move]) -> list[Event]:
        """State changes that stand or fall together (a champion crowned and the one it supersedes
        retired), each checked against the state the ones before it leave, committed in one append."""
        for move in moves:
            if move.event_type not in STATE_EVENT_TYPES:
                raise RegistryError(f"{move.event_type!r} is not a state event; use one of {STATE_EVENT_TYPES}")
            if not move.reason.strip():
                raise RegistryError("a state change needs a reason")
        with self.writing():
            states, drafts = {}, []
            for move in moves:
                artifact = self.get(move.artifact)
                state = states.get(artifact.id, artifact.state)
                check_transition(state, move.to, move.event_type, artifact.id)
                states[artifact.id] = move.to
                drafts.append(self._draft(move.event_type, artifact.id, actor=move.actor, reason=move.reason,
                                          data={**(move.data or {}), "from": state, "to": move.to}))
            events = self.log.append_all(drafts)
            self._apply(events)
            return events

    def record(self, event_type: str, artifact_id: str, *, actor: str, reason: str,
               data: dict[str, Any] | None = None) -> Event:
        """Append an event that changes no state (e.g. a spawn request)."""
        if event_type in STATE_EVENT_TYPES or event_type == "registered" or "to" in (data or {}):
            raise RegistryError(f"{event_type!r} changes state; use register() or transition()")
        with self.writing():
            if artifact_id != HOME:
                self.get(artifact_id)
            elif event_type not in KEY_EVENT_TYPES:
                raise RegistryError(f"only key events ({', '.join(KEY_EVENT_TYPES)}) are about the home itself")
            event = self._append(event_type, artifact_id, actor=actor, reason=reason, data=data)
            self._apply([event])
            return event

    def _append(self, event_type: str, artifact_id: str, *, actor: str, reason: str, data: dict | None) -> Event:
        return self.log.append_all([self._draft(event_type, artifact_id, actor=actor, reason=reason, data=data)])[0]

    def _draft(self, event_type: str, artifact_id: str, *, actor: str, reason: str, data: dict | None) -> Draft:
        """An event signed by ``actor``'s key once the home is adopted (it must then have one)."""
        signer = self.signer_for(actor) if event_type == "adopted" or self.adopted() else None
        return Draft(event_type, artifact_id, actor, reason, data, signer)

    def signer_for(self, actor: str) -> SigningKey:
        """``actor``'s private key (from ``signers``, else the key folder); a clear error without one."""
        if self.signers is None:
            self.signers = available_keys()
        signer = self.signers.get(actor)
        if signer is None:
            raise KeyFileError(f"this home takes only signed events and no private key of {actor!r} is at hand "
                               f"(looked in {key_dir()}; set --keys or ${KEYS_ENV})")
        return signer

    def adopted(self) -> bool:
        """Whether the home signs its events (an ``adopted`` event is committed)."""
        return bool(self._query("SELECT 1 FROM events WHERE type = 'adopted' LIMIT 1"))

    # ----- reading -------------------------------------------------------------------

    def get(self, ref: str) -> Artifact:
        """The committed artifact whose id is ``ref`` or starts with it (at least 6 hex)."""
        rows = self._query("SELECT id, state FROM artifacts WHERE id LIKE ? LIMIT 2", (_prefix(ref) + "%",))
        if not rows:
            raise NotFoundError(f"no artifact matches {ref!r}")
        if len(rows) > 1:
            raise NotFoundError(f"{ref!r} matches more than one artifact; give more characters")
        artifact_id = rows[0]["id"]
        manifest = self.load_manifest(artifact_id)
        return Artifact(artifact_id, manifest, self.artifacts_dir / artifact_id, rows[0]["state"])

    def find(self, kind: str | None = None, name: str | None = None, state: str | None = None) -> list[Artifact]:
        """Committed artifacts matching every filter given, newest first."""
        clauses, params = [], []
        for column, value in (("kind", kind), ("name", name), ("state", state)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = self._query(f"SELECT id FROM artifacts {where} ORDER BY registered_seq DESC", tuple(params))
        return [self.get(row["id"]) for row in rows]

    def children(self, artifact_id: str, kind: str | None = None) -> list[str]:
        """Ids of the artifacts naming ``artifact_id`` as a parent (of ``kind`` only, if given), newest first."""
        rows = self._query("SELECT l.child FROM links l JOIN artifacts a ON a.id = l.child WHERE l.target = ? AND "
                           "l.relation = 'parent' AND (? IS NULL OR a.kind = ?) ORDER BY a.registered_seq DESC",
                           (artifact_id, kind, kind))
        return [row["child"] for row in rows]

    def events(self, artifact_id: str | None = None) -> list[Event]:
        events, _ = self.log.read()
        return [e for e in events if artifact_id is None or e.artifact == artifact_id]

    def collected(self, artifact_id: str) -> set[str]:
        """The artifact's files a gc collected (empty when it is whole). Asked on every re-registration and
        every reuse lookup, so the index answers the common case; only a collected artifact reads the log."""
        if not self._query("SELECT 1 FROM events WHERE artifact = ? AND type = 'collected' LIMIT 1", (artifact_id,)):
            return set()
        return collected_files(self.events(artifact_id)).get(artifact_id, set())

    def load_manifest(self, artifact_id: str) -> Manifest:
        path = self.manifests_dir / f"{artifact_id}.json"
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise NotFoundError(f"manifest of {artifact_id[:12]} is missing") from None
        return parse(raw, source=f"manifest {artifact_id[:12]}")

    def reindex(self) -> int:
        """Rebuild the SQLite index from manifests and events; return the event count."""
        with exclusive_lock(self.lock_path):
            events, bad = self.log.read()
            if bad:
                raise RegistryError(f"event log has unreadable lines ({bad[0]}); run verify")
            index.rebuild(self.index_path, events, self.load_manifest)
            return len(events)

    # ----- internals -----------------------------------------------------------------

    def _committed(self, artifact_id: str) -> bool:
        return bool(self._query("SELECT 1 FROM artifacts WHERE id = ?", (artifact_id,)))

    def _sync_index(self) -> None:
        with closing(index.connect(self.index_path)) as conn:
            index.migrate(conn)
            behind = index.last_seq(conn)
            last = self.log.last()
            if last and last.seq > behind:
                events, _ = self.log.read()
                index.apply_events(conn, [e for e in events if e.seq > behind], self.load_manifest)

    def _apply(self, events: list[Event]) -> None:
        with closing(index.connect(self.index_path)) as conn:
            index.apply_events(conn, events, self.load_manifest)

    def _query(self, sql: str, params: tuple = ()) -> list:
        with closing(index.connect(self.index_path)) as conn:
            return conn.execute(sql, params).fetchall()


def _prefix(ref: str) -> str:
    ref = ref.strip().lower()
    if len(ref) < 6 or any(c not in "0123456789abcdef" for c in ref):
        raise NotFoundError(f"{ref!r} is not an artifact id or a prefix of at least 6 hex characters")
    return ref
