"""The SQLite index: exact schema from named migrations, rebuildable from files."""

from __future__ import annotations

import sqlite3
from contextlib import closing

from registry_helpers import register_weights

from breedlab.registry import Registry, index

EXPECTED_SCHEMA = [
    "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)",
    "CREATE TABLE artifacts ( id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, operator TEXT NOT NULL,"
    " created TEXT NOT NULL, size INTEGER NOT NULL, state TEXT, registered_seq INTEGER NOT NULL )",
    "CREATE INDEX artifacts_by_kind_name ON artifacts (kind, name)",
    "CREATE TABLE events ( seq INTEGER PRIMARY KEY, ts TEXT NOT NULL, type TEXT NOT NULL, artifact TEXT NOT NULL,"
    " actor TEXT NOT NULL, reason TEXT NOT NULL, data TEXT NOT NULL, hash TEXT NOT NULL )",
    "CREATE INDEX events_by_artifact ON events (artifact)",
    "CREATE TABLE links ( child TEXT NOT NULL, target TEXT NOT NULL, relation TEXT NOT NULL,"
    " PRIMARY KEY (child, target, relation) )",
    "CREATE INDEX links_by_target ON links (target)",
]


def test_migrations_produce_exactly_the_pinned_schema(tmp_path):
    with closing(index.connect(tmp_path / "i.sqlite")) as conn:
        assert index.migrate(conn) == [name for name, _ in index.MIGRATIONS]
        assert index.schema(conn) == EXPECTED_SCHEMA
        assert index.migrate(conn) == []  # idempotent


def test_migration_names_are_unique_and_ordered():
    names = [name for name, _ in index.MIGRATIONS]
    assert names == sorted(names) and len(set(names)) == len(names)


def test_rebuilt_index_equals_the_incremental_one(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    parent = register_weights(reg, tmp_path, name="p", content=b"1")
    register_weights(reg, tmp_path, name="c", content=b"2", kind="child", parents=[parent.id])
    reg.transition(parent.id, "champion", event_type="promoted", actor="a", reason="r")

    def dump():
        with closing(sqlite3.connect(reg.index_path)) as conn:
            return [conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("artifacts", "links", "events")]

    incremental = dump()
    reg.reindex()
    assert dump() == incremental


def test_index_catches_up_when_a_writer_died_before_updating_it(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    art = register_weights(reg, tmp_path)
    with closing(sqlite3.connect(reg.index_path)) as conn:  # simulate: event committed, index not updated
        conn.execute("DELETE FROM artifacts")
        conn.execute("DELETE FROM events")
        conn.commit()
    reopened = Registry.open(reg.root)
    assert reopened.get(art.id).manifest.name == "pico"


def test_children_of_a_kind_come_from_the_index_newest_first(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    parent = register_weights(reg, tmp_path, name="parent", content=b"p" * 64)
    older = register_weights(reg, tmp_path, name="older", content=b"o" * 64, kind="child", parents=[parent.id])
    newer = register_weights(reg, tmp_path, name="newer", content=b"n" * 64, kind="child", parents=[parent.id])
    quantized = register_weights(reg, tmp_path, name="q", content=b"q" * 64, kind="quantized", parents=[parent.id])
    assert reg.children(parent.id, kind="child") == [newer.id, older.id]
    assert reg.children(parent.id) == [quantized.id, newer.id, older.id]
    assert reg.children(older.id, kind="child") == []
