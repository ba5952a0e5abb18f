"""SQLite index over the registry: a cache for queries, rebuildable from files.

The files (manifests and the event log) are the truth; this database only
makes ``list``/``find``/``lineage`` fast. Its schema changes only through the
append-only, named ``MIGRATIONS`` below (never edit one; add a new one), and
``rebuild`` recreates it from the files alone.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Callable, Iterable

from breedlab.registry.events import Event
from breedlab.registry.lifecycle import INITIAL_STATE, has_lifecycle
from breedlab.registry.manifest import Manifest

MIGRATIONS: list[tuple[str, str]] = [
    ("001_artifacts", """
        CREATE TABLE artifacts (
            id TEXT PRIMARY KEY,
            kind TEXT NOT NULL,
            name TEXT NOT NULL,
            operator TEXT NOT NULL,
            created TEXT NOT NULL,
            size INTEGER NOT NULL,
            state TEXT,
            registered_seq INTEGER NOT NULL
        )"""),
    ("002_links", """
        CREATE TABLE links (
            child TEXT NOT NULL,
            target TEXT NOT NULL,
            relation TEXT NOT NULL,
            PRIMARY KEY (child, target, relation)
        )"""),
    ("003_events", """
        CREATE TABLE events (
            seq INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            type TEXT NOT NULL,
            artifact TEXT NOT NULL,
            actor TEXT NOT NULL,
            reason TEXT NOT NULL,
            data TEXT NOT NULL,
            hash TEXT NOT NULL
        )"""),
    ("004_lookup_indexes", """
        CREATE INDEX artifacts_by_kind_name ON artifacts (kind, name);
        CREATE INDEX links_by_target ON links (target);
        CREATE INDEX events_by_artifact ON events (artifact)"""),
]


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the index migrations not yet applied, in order; return their names."""
    return apply_migrations(conn, MIGRATIONS)


def apply_migrations(conn: sqlite3.Connection, migrations: list[tuple[str, str]]) -> list[str]:
    """Apply the named SQL migrations ``conn`` has not seen, in order, each in its own transaction.

    Shared by every breedlab SQLite database (registry index, task monitor): the
    ``_migrations`` table records which names ran, so a list may only grow.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)")
    done = {row[0] for row in conn.execute("SELECT name FROM _migrations")}
    applied = []
    for name, sql in migrations:
        if name in done:
            continue
        conn.execute("BEGIN")
        for statement in sql.split(";"):
            conn.execute(statement)
        conn.execute("INSERT INTO _migrations VALUES (?, datetime('now'))", (name,))
        conn.execute("COMMIT")
        applied.append(name)
    return applied


def last_seq(conn: sqlite3.Connection) -> int:
    return conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]


def apply_events(conn: sqlite3.Connection, events: Iterable[Event], load: Callable[[str], Manifest]) -> int:
    """Fold ``events`` into the index in one transaction; ``load`` reads a manifest by id."""
    count = 0
    conn.execute("BEGIN")
    try:
        for event in events:
            _apply_one(conn, event, load)
            count += 1
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return count


def _apply_one(conn: sqlite3.Connection, event: Event, load: Callable[[str], Manifest]) -> None:
    conn.execute(
        "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (event.seq, event.ts, event.type, event.artifact, event.actor, event.reason,
         json.dumps(event.data, sort_keys=True), event.hash),
    )
    if event.type == "registered":
        manifest = load(event.artifact)
        size = sum(entry.size for entry in manifest.files.values())
        state = INITIAL_STATE if has_lifecycle(manifest.kind) else None
        conn.execute(
            "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event.artifact, manifest.kind, manifest.name, manifest.operator, manifest.created,
             size, state, event.seq),
        )
        links = [(p, "parent") for p in manifest.parents] + [(d, "data") for d in manifest.data]
        conn.executemany(
            "INSERT OR IGNORE INTO links VALUES (?, ?, ?)",
            [(event.artifact, target, relation) for target, relation in links],
        )
    elif "to" in event.data:
        conn.execute("UPDATE artifacts SET state = ? WHERE id = ?", (event.data["to"], event.artifact))


def rebuild(path: Path, events: list[Event], load: Callable[[str], Manifest]) -> None:
    """Recreate the index from the files alone, then swap it in atomically."""
    tmp = path.with_name(path.name + ".rebuild")
    tmp.unlink(missing_ok=True)
    with closing(connect(tmp)) as conn:
        migrate(conn)
        apply_events(conn, events, load)
    tmp.replace(path)


def schema(conn: sqlite3.Connection) -> list[str]:
    """The schema as SQL text, for tests that pin it exactly."""
    rows = conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name")
    return [" ".join(row["sql"].split()) for row in rows]
