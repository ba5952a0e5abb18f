"""Labelled live traffic: which domain a query belongs to, and who said so.

Every label records its provenance: ``monitor`` (the task monitor assigned the query
to a known domain above that domain's calibrated threshold), ``feedback`` (a user
said which answer was right), or ``admin`` (an operator labelled it). A refit learns
only from labels whose provenance it is told to trust, and only where the text was
kept: a home whose query log keeps hashes only (the privacy default of the server)
records the label with its hash and no text, so it can be counted but never learnt.

SQLite, one file, WAL: a killed process loses at most the label being written.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

PROVENANCES = ("monitor", "feedback", "admin")

SCHEMA = """CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY, ts TEXT NOT NULL, text TEXT, text_sha256 TEXT NOT NULL,
    domain TEXT NOT NULL, provenance TEXT NOT NULL, confidence REAL)"""


class LabelStore:
    """Append-only labels of live queries (see the module docstring)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute(SCHEMA)
        self.conn.commit()

    def add(self, text: str, domain: str, provenance: str, *, keep_text: bool, confidence: float | None = None,
            now: datetime | None = None) -> int:
        """Record one label; an unknown provenance is refused (a label must say where it came from)."""
        if provenance not in PROVENANCES:
            raise ValueError(f"unknown label provenance {provenance!r}; known: {', '.join(PROVENANCES)}")
        if not domain:
            raise ValueError("a label needs a domain")
        ts = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        cursor = self.conn.execute(
            "INSERT INTO labels (ts, text, text_sha256, domain, provenance, confidence) VALUES (?, ?, ?, ?, ?, ?)",
            (ts, text if keep_text else None, hashlib.sha256(text.encode()).hexdigest(), domain, provenance,
             confidence))
        self.conn.commit()
        return int(cursor.lastrowid)

    def last_id(self) -> int:
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM labels").fetchone()[0])

    def training_labels(self, provenances: tuple[str, ...] | list[str], *, after_id: int = 0,
                        domains: list[str] | None = None) -> dict[str, list[str]]:
        """{domain: texts} of labels after ``after_id`` with a trusted provenance and a kept text."""
        trusted = [p for p in provenances if p in PROVENANCES]
        if not trusted:
            return {}
        marks = ",".join("?" * len(trusted))
        rows = self.conn.execute(
            f"SELECT domain, text FROM labels WHERE id > ? AND text IS NOT NULL AND provenance IN ({marks}) "
            "ORDER BY id", (after_id, *trusted)).fetchall()
        out: dict[str, list[str]] = {}
        for domain, text in rows:
            if domains is None or domain in domains:
                out.setdefault(domain, []).append(text)
        return out

    def counts(self) -> dict[str, int]:
        """Labels per provenance (with or without text)."""
        return dict(self.conn.execute("SELECT provenance, COUNT(*) FROM labels GROUP BY provenance").fetchall())

    def close(self) -> None:
        self.conn.close()
