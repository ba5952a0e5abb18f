"""Human benefit, measured from people: a rating on any served response, kept per model and niche.

Every response the server returns is recorded (its id, the model that served it, the niche it was
routed to, or none for the parent's no-op route); a person may rate it once, +1 or -1, with an
optional comment. Approval of a model is ``up / (up + down)``, and the rollout gate reads its
**Wilson score lower bound** (``approval_bound``) so that a child with three thumbs up is not taken
for one with three hundred. Its own SQLite file under the home's logs (never the registry's index);
the response table keeps the newest ``retain_responses`` rows, the ratings are kept.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from breedlab.registry.events import utc_now
from breedlab.registry.index import apply_migrations

MIGRATIONS: list[tuple[str, str]] = [
    ("001_responses", """
        CREATE TABLE responses (
            id TEXT PRIMARY KEY, ts TEXT NOT NULL, model TEXT NOT NULL, niche TEXT
        )"""),
    ("002_ratings", """
        CREATE TABLE ratings (
            response_id TEXT PRIMARY KEY, ts TEXT NOT NULL, model TEXT NOT NULL, niche TEXT,
            rating INTEGER NOT NULL CHECK (rating IN (-1, 1)), comment TEXT
        )"""),
    ("003_ratings_by_model", "CREATE INDEX ratings_by_model ON ratings (model)"),
]


class UnknownResponse(KeyError):
    """No served response has this id (never served here, or aged out of the response table)."""


@dataclass(frozen=True)
class Approval:
    model: str
    up: int
    down: int

    @property
    def ratings(self) -> int:
        return self.up + self.down

    @property
    def rate(self) -> float | None:
        return self.up / self.ratings if self.ratings else None

    def bound(self, confidence: float = 0.95) -> float | None:
        return approval_bound(self.up, self.ratings, confidence)


def approval_bound(up: int, n: int, confidence: float = 0.95) -> float | None:
    """The Wilson score interval's lower bound of the approval rate (one-sided at ``confidence``)."""
    if n <= 0:
        return None
    from scipy.stats import norm

    z = float(norm.ppf(confidence))
    p = up / n
    centre = p + z * z / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, (centre - spread) / (1 + z * z / n))


class FeedbackStore:
    """Thread-safe: the server records responses from worker threads and ratings from the event loop."""

    def __init__(self, path: Path, *, retain_responses: int = 200_000) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.conn = sqlite3.connect(Path(path), timeout=60, isolation_level=None, check_same_thread=False)
        apply_migrations(self.conn, MIGRATIONS)
        self.retain = retain_responses
        self.lock = threading.Lock()
        self._served = 0

    def served(self, response_id: str, *, model: str, niche: str | None) -> None:
        with self.lock, self.conn:
            self.conn.execute("INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?)", (response_id, utc_now(), model,
                                                                                     niche))
            self._served += 1
            if self.retain and self._served % 1000 == 0:
                self.conn.execute("DELETE FROM responses WHERE rowid <= (SELECT MAX(rowid) FROM responses) - ?",
                                  (self.retain,))

    def rate(self, response_id: str, rating: int, comment: str | None = None) -> tuple[str, str | None]:
        """Store a person's rating of a served response; (model, niche) it counts for. A second rating
        of the same response replaces the first (one person, one vote per answer)."""
        if rating not in (-1, 1):
            raise ValueError(f"a rating is +1 or -1, got {rating!r}")
        with self.lock, self.conn:
            row = self.conn.execute("SELECT model, niche FROM responses WHERE id = ?", (response_id,)).fetchone()
            if row is None:
                raise UnknownResponse(response_id)
            self.conn.execute("INSERT OR REPLACE INTO ratings VALUES (?, ?, ?, ?, ?, ?)",
                              (response_id, utc_now(), row[0], row[1], rating, comment))
        return row[0], row[1]

    def approval(self, model: str, niche: str | None = None) -> Approval:
        query = "SELECT SUM(rating = 1), SUM(rating = -1) FROM ratings WHERE model = ?"
        args: tuple = (model,)
        if niche is not None:
            query, args = query + " AND niche = ?", (model, niche)
        with self.lock:
            up, down = self.conn.execute(query, args).fetchone()
        return Approval(model, up or 0, down or 0)

    def by_model(self) -> list[Approval]:
        with self.lock:
            rows = self.conn.execute("SELECT model, SUM(rating = 1), SUM(rating = -1) FROM ratings "
                                     "GROUP BY model ORDER BY model").fetchall()
        return [Approval(m, up or 0, down or 0) for m, up, down in rows]

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def open_store(path: Path) -> FeedbackStore:
    try:
        return FeedbackStore(path)
    except sqlite3.DatabaseError as error:
        raise sqlite3.DatabaseError(f"{path}: the feedback store cannot be opened ({error})") from error
