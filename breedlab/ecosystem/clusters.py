"""Discovering unknown domains: greedy leader clustering of query embeddings, and naming a cluster.

The task monitor (``monitor.py``) clusters each window's unknown queries with
``leader_clusters`` (cosine threshold, numpy only, deterministic in arrival
order) and names a cluster that persists by ``candidate_name``: its members'
most frequent non-stopword terms.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

STOPWORDS = frozenset(["the", "and", "for", "with", "that", "this", "from", "was", "were", "are", "has", "have", "had", "not", "but", "into", "onto", "then", "than", "there", "their", "them", "they", "what", "when", "where", "which", "while", "who", "why", "how", "its", "his", "her", "our", "your", "you", "all", "any", "can", "may", "one", "two", "out", "off", "over", "under", "very", "just", "also", "more", "most", "some", "such", "only", "own", "same", "too", "each", "other", "def", "return", "none", "true", "false"])


@dataclass
class Cluster:
    """Unknown queries of one window that sit together: members are row positions in the window."""

    centroid: np.ndarray
    members: list[int] = field(default_factory=list)
    streak: int = 1


def leader_clusters(vectors: np.ndarray, threshold: float) -> list[Cluster]:
    """Greedy leader clustering in arrival order: join the most similar cluster above threshold."""
    clusters: list[Cluster] = []
    for i, vector in enumerate(vectors):
        sims = [float(c.centroid @ vector) for c in clusters]
        if sims and max(sims) >= threshold:
            best = clusters[int(np.argmax(sims))]
            best.members.append(i)
            best.centroid = normalise(vectors[best.members].mean(axis=0, keepdims=True))[0]
        else:
            clusters.append(Cluster(vector.copy(), [i]))
    return clusters


def candidate_name(texts: list[str], terms: int = 3) -> str:
    """The ``terms`` most frequent non-stopword words (ties alphabetical), joined by '-'."""
    counts = Counter(w for t in texts for w in re.findall(r"[a-z]{3,}", t.lower()) if w not in STOPWORDS)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return "-".join(word for word, _ in ranked[:terms]) or "unnamed"


def normalise(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero), float32."""
    return (matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)).astype(np.float32)
