"""Task monitor (node 2 of the ecosystem): log every query, assign it a domain, keep per-domain stats.

Each query is one row in the monitor's own SQLite file (never the registry's
index: the query log is high volume and may hold user text). Known domains
are assigned by nearest centroid over all-MiniLM-L6-v2 embeddings, with a
similarity threshold below which a query is "unknown". Unknown queries of a
window are clustered (greedy leader clustering by cosine threshold, numpy
only, deterministic); a cluster that matches one from the previous window
for ``persist_windows`` consecutive windows becomes a candidate domain named
by its members' most frequent non-stopword terms.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from breedlab.ecosystem.clusters import Cluster, candidate_name, leader_clusters, normalise
from breedlab.registry.index import apply_migrations, connect

MIGRATIONS: list[tuple[str, str]] = [
    ("001_queries", """
        CREATE TABLE queries (
            id INTEGER PRIMARY KEY,
            ts TEXT NOT NULL,
            text TEXT,
            text_sha256 TEXT NOT NULL,
            embedding BLOB NOT NULL,
            domain TEXT,
            model TEXT NOT NULL,
            latency_ms REAL NOT NULL,
            tokens INTEGER NOT NULL
        )"""),
    ("002_domain_stats", """
        CREATE TABLE domain_stats (
            window INTEGER NOT NULL,
            domain TEXT NOT NULL,
            queries INTEGER NOT NULL,
            volume_share REAL NOT NULL,
            breadth REAL NOT NULL,
            parent_gap REAL,
            tokens INTEGER NOT NULL,
            PRIMARY KEY (window, domain)
        )"""),
    ("003_queries_by_domain", "CREATE INDEX queries_by_domain ON queries (domain)"),
]


@dataclass(frozen=True)
class MonitorConfig:
    known_threshold: float = 0.5
    """Cosine similarity to a known centroid below which a query is unknown (domains not calibrated)."""
    known_quantile: float = 0.1
    """Calibration: a known domain's threshold is this quantile of its held-out queries' similarity."""
    docs_per_domain: int = 64
    """Training documents embedded (first 512 chars each) per known-domain centroid."""
    cluster_threshold: float = 0.6
    """Cosine similarity for an unknown query to join a cluster, and for clusters of two windows to match."""
    min_cluster_size: int = 5
    """Members a window's cluster needs to count at all."""
    persist_windows: int = 2
    """Consecutive windows a cluster must persist to become a candidate domain."""
    name_terms: int = 3
    """Top terms in a candidate domain's name."""
    retain_queries: int = 200_000
    """Query rows kept (newest); older ones are deleted when a window closes, so a server's log is bounded
    on disk (~2 KB a row with its embedding). Per-window domain stats are kept for good. 0: keep all."""


GapFn = Callable[[str, list[str]], float]
"""(domain, its window's query texts) -> the parent's gap, e.g. its mean NLL on them."""


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the monitor migrations not yet applied, in order (the registry index's mechanism)."""
    return apply_migrations(conn, MIGRATIONS)


@dataclass
class DomainCentroids:
    """Unit centroids of known domains; a query joins the nearest one if similar enough."""

    names: list[str]
    matrix: np.ndarray  # (K, 384) unit rows
    threshold: float

    @classmethod
    def from_datasets(cls, registry, domains: list[str], embedder, *, docs_per_domain: int = 64,
                      threshold: float = 0.5) -> DomainCentroids:
        """Centroids from each domain's ``<domain>/train`` dataset: its first docs' first 512 chars."""
        from breedlab.data.read import iter_texts

        rows = []
        for domain in domains:
            found = registry.find(kind="dataset", name=f"{domain}/train")
            if not found:
                raise ValueError(f"no dataset {domain}/train registered")
            texts = []
            for text in iter_texts(found[0].path):  # file order, so the centroid is deterministic
                texts.append(text[:512])
                if len(texts) >= docs_per_domain:
                    break
            rows.append(embedder.embed(texts).mean(axis=0))
        return cls(list(domains), normalise(np.stack(rows)), threshold)

    per_domain: dict[str, float] = field(default_factory=dict)
    """Calibrated thresholds by domain (``calibrate``); a domain without one uses ``threshold``."""

    def assign(self, vectors: np.ndarray) -> list[str | None]:
        """Nearest domain per row of ``vectors`` (N, 384), or None below that domain's threshold."""
        if not self.names or len(vectors) == 0:
            return [None] * len(vectors)
        sims = vectors @ self.matrix.T  # (N, K) cosine, rows are unit vectors
        best = sims.argmax(axis=1)
        return [self.names[k] if sims[i, k] >= self.per_domain.get(self.names[k], self.threshold) else None
                for i, k in enumerate(best)]

    def similarity(self, a: str, b: str) -> float | None:
        """Cosine similarity of two domains' centroids (None when either has none): how converged they are."""
        if a not in self.names or b not in self.names:
            return None
        return float(self.matrix[self.names.index(a)] @ self.matrix[self.names.index(b)])

    def calibrate(self, validation: dict[str, np.ndarray], quantile: float) -> dict[str, float]:
        """Per-domain thresholds: the ``quantile`` of held-out queries' similarity to their own centroid.

        Real query-sized text sits far from a corpus centroid (cosine 0.1-0.4 for
        MiniLM on 1-4 sentences), and a diverse domain (general prose) sits further
        than a narrow one, so one global threshold either drops most real queries as
        unknown or admits everything. With ``quantile`` q, about (1 - q) of a known
        domain's own held-out queries are recognised as it; what falls below every
        domain's threshold is unknown and feeds candidate discovery.
        """
        for name, vectors in validation.items():
            own = vectors @ self.matrix[self.names.index(name)]
            self.per_domain[name] = float(np.quantile(own, quantile))
        return dict(self.per_domain)

    def add(self, name: str, centroid: np.ndarray) -> None:
        """Adopt a candidate domain so later queries are assigned to it."""
        self.names.append(name)
        self.matrix = np.vstack([self.matrix, normalise(centroid[None, :])]) if len(self.matrix) \
            else normalise(centroid[None, :])


@dataclass(frozen=True)
class DomainStats:
    """One domain over one window: the inputs the specialisation detector scores."""

    domain: str
    window: int
    queries: int
    volume_share: float
    breadth: float
    """Mean cosine distance of the members to their centroid (0 = all identical)."""
    parent_gap: float | None
    """What ``gap_fn`` returned for this domain's texts; None when no gap_fn is set."""
    tokens: int
    window_tokens: int
    """Tokens served in the whole window, for the compute-savings share."""


class TaskMonitor:
    """Logs queries to ``path`` (SQLite), assigns domains, closes windows into per-domain stats.

    ``gap_fn`` defaults to None: no gap is measured and ``parent_gap`` is stored as NULL (the
    detector then counts it as 0). ``detector.parent_nll_gap(model, tokenizer)`` is the real one.
    """

    def __init__(self, path: Path, embedder, *, store_text: bool = True,
                 centroids: DomainCentroids | None = None, config: MonitorConfig | None = None,
                 gap_fn: GapFn | None = None):
        self.conn = connect(Path(path))
        migrate(self.conn)
        self.embedder, self.store_text, self.gap_fn = embedder, store_text, gap_fn
        self.config = config or MonitorConfig()
        self.centroids = centroids or DomainCentroids([], np.zeros((0, 0), np.float32), self.config.known_threshold)
        self.window = 0
        self.candidates: list[str] = []
        self._window_start = self._last_id()
        self._texts: dict[int, str] = {}  # this window only, in memory: gap_fn needs text even in hash mode
        self._clusters: list[Cluster] = []

    def log(self, text: str, *, model: str, latency_ms: float, tokens: int,
            now: datetime | None = None) -> str | None:
        """Record one served query; return its assigned domain (None if unknown)."""
        vector = self.embedder.embed([text])[0].astype(np.float32)
        domain = self.centroids.assign(vector[None, :])[0]
        ts = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        cursor = self.conn.execute(
            "INSERT INTO queries (ts, text, text_sha256, embedding, domain, model, latency_ms, tokens) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (ts, text if self.store_text else None, hashlib.sha256(text.encode()).hexdigest(),
             vector.tobytes(), domain, model, float(latency_ms), int(tokens)))
        self._texts[cursor.lastrowid] = text
        return domain

    def close_window(self) -> list[DomainStats]:
        """Stats of every domain seen since the last close; unknown queries feed candidate discovery."""
        rows = self.conn.execute("SELECT id, embedding, domain, tokens, text FROM queries WHERE id > ? ORDER BY id",
                                 (self._window_start,)).fetchall()
        vectors = np.stack([np.frombuffer(r["embedding"], np.float32) for r in rows]) if rows else None
        unknown = [i for i, r in enumerate(rows) if r["domain"] is None]
        self._track_clusters(rows, vectors, unknown)
        stats = self._domain_stats(rows, vectors)
        self.conn.executemany("INSERT INTO domain_stats VALUES (?, ?, ?, ?, ?, ?, ?)",
                              [(s.window, s.domain, s.queries, s.volume_share, s.breadth, s.parent_gap,
                                s.tokens) for s in stats])
        self.window += 1
        self._window_start = rows[-1]["id"] if rows else self._window_start
        self._texts.clear()
        if self.config.retain_queries > 0:  # closed windows only: the open one starts after _window_start
            self.conn.execute("DELETE FROM queries WHERE id <= ?", (self._window_start - self.config.retain_queries,))
        return stats

    def _domain_stats(self, rows, vectors) -> list[DomainStats]:
        total = len(rows)
        window_tokens = sum(r["tokens"] for r in rows)
        stats = []
        for domain in sorted({r["domain"] for r in rows if r["domain"] is not None}):
            idx = [i for i, r in enumerate(rows) if r["domain"] == domain]
            members = vectors[idx]
            centre = normalise(members.mean(axis=0, keepdims=True))[0]
            # this process's own texts (kept in hash mode too), else the stored ones: another process's
            # rows (a Serve replica's, read by the writer) carry their text unless hashes only are kept
            texts = [self._texts.get(rows[i]["id"]) or rows[i]["text"] or "" for i in idx]
            gap = float(self.gap_fn(domain, texts)) if self.gap_fn else None
            stats.append(DomainStats(domain, self.window, len(idx), len(idx) / total,
                                     float(np.mean(1.0 - members @ centre)), gap,
                                     sum(rows[i]["tokens"] for i in idx), window_tokens))
        return stats

    def _track_clusters(self, rows, vectors, unknown: list[int]) -> None:
        """Cluster this window's unknowns; promote those matching a cluster of the last window often enough."""
        cfg = self.config
        current = [c for c in leader_clusters(vectors[unknown] if unknown else np.zeros((0, 1)),
                                               cfg.cluster_threshold) if len(c.members) >= cfg.min_cluster_size]
        for cluster in current:
            cluster.members = [unknown[m] for m in cluster.members]
            previous = [p for p in self._clusters if float(p.centroid @ cluster.centroid) >= cfg.cluster_threshold]
            cluster.streak = 1 + max((p.streak for p in previous), default=0)
            if cluster.streak >= cfg.persist_windows:
                self._promote(cluster, rows)
        self._clusters = [c for c in current if c.streak < cfg.persist_windows]

    def _promote(self, cluster: Cluster, rows) -> None:
        texts = [self._texts.get(rows[i]["id"], "") for i in cluster.members]
        name = candidate_name(texts, self.config.name_terms)
        if name in self.centroids.names:
            name = f"{name}-{len(self.candidates)}"
        self.candidates.append(name)
        self.centroids.add(name, cluster.centroid)
        # Relabel the members so this very window's stats already count the new domain.
        self.conn.executemany("UPDATE queries SET domain = ? WHERE id = ?",
                              [(name, rows[i]["id"]) for i in cluster.members])
        for i in cluster.members:
            rows[i] = {**dict(rows[i]), "domain": name}

    def _last_id(self) -> int:
        return self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM queries").fetchone()[0]
