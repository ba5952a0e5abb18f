"""The task monitor logs queries, assigns known domains, and discovers persistent new ones."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import pytest

from breedlab.ecosystem.clusters import candidate_name
from breedlab.ecosystem.monitor import DomainCentroids, MonitorConfig, TaskMonitor
from breedlab.lab.pico_home import register_synthetic_splits, synthetic_documents
from breedlab.registry import Registry
from breedlab.registry.index import schema

DOMAINS = ["code", "medical", "general"]
STARS = ["nebula", "pulsar", "quasar", "comet", "galaxy", "supernova"]
SCOPES = ["telescope", "observatory", "spectrograph"]


def astronomy(count: int, seed: int) -> list[str]:
    """Off-topic queries from a domain the monitor has no centroid for."""
    rng = random.Random(seed)
    return [f"The {rng.choice(SCOPES)} observed a {rng.choice(STARS)} in orbit near the galaxy; "
            f"the {rng.choice(STARS)} emitted bright light across the night sky." for _ in range(count)]


@pytest.fixture(scope="module")
def embedder():
    import torch

    from breedlab.ecosystem.embed import shared_embedder

    torch.set_num_threads(1)
    return shared_embedder()


@pytest.fixture(scope="module")
def centroids(embedder, tmp_path_factory):
    registry = Registry.open(tmp_path_factory.mktemp("monitor") / "registry")
    for domain in DOMAINS:
        register_synthetic_splits(registry, domain, docs=32, seed=0)
    return DomainCentroids.from_datasets(registry, DOMAINS, embedder, docs_per_domain=32, threshold=0.5)


def monitor(tmp_path, embedder, centroids, **kwargs) -> TaskMonitor:
    fresh = DomainCentroids(list(centroids.names), centroids.matrix.copy(), centroids.threshold)
    config = MonitorConfig(cluster_threshold=0.6, min_cluster_size=5, persist_windows=2)
    return TaskMonitor(tmp_path / "monitor.sqlite", embedder, centroids=fresh, config=config, **kwargs)


def test_known_domains_are_assigned_and_off_topic_queries_are_not(embedder, centroids):
    # queries are short: the first 300 characters of held-out documents (seed 7, not the centroids' 0)
    texts = [t[:300] for d in DOMAINS for t in synthetic_documents(d, 20, seed=7)]
    truth = [d for d in DOMAINS for _ in range(20)]
    assigned = centroids.assign(embedder.embed(texts))
    accuracy = np.mean([a == t for a, t in zip(assigned, truth)])
    assert accuracy > 0.9, accuracy
    off_topic = centroids.assign(embedder.embed(astronomy(20, seed=1)))
    assert sum(a is None for a in off_topic) >= 18


def test_every_query_is_logged_with_its_fields(tmp_path, embedder, centroids):
    mon = monitor(tmp_path, embedder, centroids)
    text = synthetic_documents("code", 1, seed=3)[0]
    assert mon.log(text, model="parent", latency_ms=12.5, tokens=40) == "code"
    row = mon.conn.execute("SELECT * FROM queries").fetchone()
    assert row["text"] == text and row["text_sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert row["model"] == "parent" and row["latency_ms"] == 12.5 and row["tokens"] == 40
    assert row["ts"].endswith("+00:00")  # UTC
    assert np.frombuffer(row["embedding"], np.float32).shape == (384,)


def test_hash_only_mode_stores_no_text(tmp_path, embedder, centroids):
    mon = monitor(tmp_path, embedder, centroids, store_text=False)
    texts = synthetic_documents("medical", 3, seed=4)
    for text in texts:
        mon.log(text, model="parent", latency_ms=1.0, tokens=10)
    rows = mon.conn.execute("SELECT text, text_sha256 FROM queries").fetchall()
    assert all(r["text"] is None for r in rows)
    assert [r["text_sha256"] for r in rows] == [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    mon.close_window()
    assert texts[0].split("\n")[0].encode() not in (tmp_path / "monitor.sqlite").read_bytes()


def test_window_stats_and_parent_gap(tmp_path, embedder, centroids):
    def gap(domain, texts):
        return float(np.mean([len(t) for t in texts])) / 100

    mon = monitor(tmp_path, embedder, centroids, gap_fn=gap)
    code, general = synthetic_documents("code", 6, seed=5), synthetic_documents("general", 4, seed=5)
    for text in code + general:
        mon.log(text, model="parent", latency_ms=1.0, tokens=10)
    stats = {s.domain: s for s in mon.close_window()}
    assert stats["code"].volume_share == pytest.approx(0.6) and stats["general"].queries == 4
    assert stats["code"].parent_gap == pytest.approx(np.mean([len(t) for t in code]) / 100)
    assert 0.0 <= stats["code"].breadth < 0.5 and stats["code"].window_tokens == 100
    stored = mon.conn.execute("SELECT domain, parent_gap FROM domain_stats ORDER BY domain").fetchall()
    assert [r["domain"] for r in stored] == ["code", "general"]


def test_the_query_log_keeps_the_newest_rows_and_every_window_s_stats(tmp_path, embedder, centroids):
    mon = TaskMonitor(tmp_path / "monitor.sqlite", embedder, centroids=centroids,
                      config=MonitorConfig(retain_queries=8))
    texts = synthetic_documents("code", 12, seed=6) + synthetic_documents("general", 12, seed=6)
    for window in range(3):
        for text in texts[window * 8:(window + 1) * 8]:
            mon.log(text, model="parent", latency_ms=1.0, tokens=10)
        if window == 2:  # the open window is never trimmed: its queries are still to be counted
            assert mon.conn.execute("SELECT COUNT(*) FROM queries").fetchone()[0] == 16
        mon.close_window()
    kept = mon.conn.execute("SELECT text FROM queries ORDER BY id").fetchall()
    assert [r["text"] for r in kept] == texts[16:]  # the newest 8 rows
    windows = mon.conn.execute("SELECT window, SUM(queries) FROM domain_stats GROUP BY window").fetchall()
    assert [tuple(r) for r in windows] == [(0, 8), (1, 8), (2, 8)]


def test_a_persistent_unknown_cluster_becomes_a_named_candidate(tmp_path, embedder, centroids):
    mon = monitor(tmp_path, embedder, centroids)
    for window in range(2):
        for text in astronomy(8, seed=10 + window) + synthetic_documents("code", 4, seed=window):
            mon.log(text, model="parent", latency_ms=1.0, tokens=10)
        stats = {s.domain: s for s in mon.close_window()}
        if window == 0:
            assert mon.candidates == [] and set(stats) == {"code"}  # one window is not yet persistent
    [name] = mon.candidates
    assert set(name.split("-")) & {"galaxy", "light", "night", "orbit", "sky", "bright"}
    assert stats[name].queries == 8 and stats[name].volume_share == pytest.approx(8 / 12)
    assert mon.log(astronomy(1, seed=99)[0], model="parent", latency_ms=1.0, tokens=5) == name


def test_candidate_names_are_top_non_stopword_terms():
    assert candidate_name(["the quasar and the pulsar", "a quasar with the comet"], terms=2) == "quasar-comet"


def test_schema_is_pinned(tmp_path, embedder, centroids):
    mon = monitor(tmp_path, embedder, centroids)
    assert schema(mon.conn) == [
        "CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied TEXT NOT NULL)",
        ("CREATE TABLE domain_stats ( window INTEGER NOT NULL, domain TEXT NOT NULL, queries INTEGER NOT NULL,"
         " volume_share REAL NOT NULL, breadth REAL NOT NULL, parent_gap REAL, tokens INTEGER NOT NULL,"
         " PRIMARY KEY (window, domain) )"),
        ("CREATE TABLE queries ( id INTEGER PRIMARY KEY, ts TEXT NOT NULL, text TEXT, text_sha256 TEXT NOT NULL,"
         " embedding BLOB NOT NULL, domain TEXT, model TEXT NOT NULL, latency_ms REAL NOT NULL,"
         " tokens INTEGER NOT NULL )"),
        "CREATE INDEX queries_by_domain ON queries (domain)",
    ]


def test_calibrated_thresholds_recognise_most_held_out_queries_of_each_domain():
    import numpy as np

    from breedlab.ecosystem.monitor import DomainCentroids

    rng = np.random.default_rng(0)
    axes = np.eye(8, dtype=np.float32)[:2]  # two domains along two axes

    def queries(axis, spread, n=200):  # unit vectors scattered around ``axis``
        v = axis + spread * rng.standard_normal((n, 8)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    narrow, diverse = queries(axes[0], 0.2), queries(axes[1], 1.0)
    centroids = DomainCentroids(["narrow", "diverse"], axes.copy(), threshold=0.5)
    assert sum(d == "diverse" for d in centroids.assign(diverse)) < 100  # one global threshold drops most
    thresholds = centroids.calibrate({"narrow": narrow, "diverse": diverse}, quantile=0.1)
    assert thresholds["diverse"] < thresholds["narrow"]
    fresh = queries(axes[1], 1.0)
    assert sum(d == "diverse" for d in centroids.assign(fresh)) > 140  # ~90% minus argmax errors
    away = -(axes[0] + axes[1]) / np.sqrt(2)
    assert centroids.assign(away[None, :]) == [None]  # opposite both domains: still unknown
