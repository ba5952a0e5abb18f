"""Router policies: one abstract scoring method, a name -> class table, a random baseline.

Follows RouteLLM's ``routers/routers.py``: every policy implements only
``scores(texts) -> (N, D)`` over its known domains; the shared ``route()`` takes
the argmax and falls back to the PARENT (the no-op route) when the confidence
(the best score) is below the calibrated threshold, or when the best domain has
no active specialist. Scores are on an absolute scale (cosine similarity, hit
share), not softmaxed, so that out-of-domain text gets a low confidence; the one
exception, ``linear`` (linear.py), scores softmax probabilities and relies on
the calibrated threshold's out-of-domain quantile to keep general text on the parent.
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

TOKEN = re.compile(r"[a-z][a-z_]{2,}")


@dataclass(frozen=True)
class Route:
    """Where one query goes: its best domain, the serving model (None = parent), the confidence."""

    domain: str
    target: str | None
    confidence: float


class Policy(ABC):
    """A fitted routing policy over ``domains``; ``threshold`` is set by calibration."""

    name: str = ""
    uses_embeddings: bool = True

    def __init__(self, domains: list[str], *, threshold: float = 0.0, embedder: Any = None,
                 embedder_name: str = "", calibration: dict | None = None,
                 parent_domains: list[str] | tuple = ()):
        self.domains = list(domains)
        # Classes the policy knows but never serves: the parent's own domains. Learning them as
        # classes (not only as a threshold's out-of-domain quantile) keeps "how do I bake bread?"
        # off the code child, although it is phrased like "how do I reverse a list?".
        self.parent_domains = [d for d in self.domains if d in set(parent_domains)]
        unknown = set(parent_domains) - set(self.domains)
        if unknown:
            raise ValueError(f"parent domains outside the policy's domains: {sorted(unknown)}")
        self.threshold = float(threshold)
        self.embedder = embedder
        self.embedder_name = embedder_name or getattr(embedder, "name", "")
        self.calibration = dict(calibration or {})

    @abstractmethod
    def scores(self, texts: list[str]) -> np.ndarray:
        """(N, D) scores, higher = more likely; column j is ``self.domains[j]``."""

    def params(self) -> dict:
        """JSON-able hyper-parameters and fitted values (tensors go to ``tensors()``)."""
        return {}

    def tensors(self) -> dict[str, np.ndarray]:
        """Fitted arrays saved as safetensors (never pickle)."""
        return {}

    def _embed(self, texts: list[str]) -> np.ndarray:
        if self.embedder is None:
            raise ValueError(f"policy {self.name!r} needs an embedder; pass one to fit/load_policy")
        return self.embedder.embed(list(texts))  # (N, 384) unit vectors

    def route(self, texts: list[str], specialists: Mapping[str, str]) -> list[Route]:
        """Route each text; ``specialists`` maps a domain to its ACTIVE specialist's id."""
        return self.routes_from_scores(self.scores(texts), specialists)

    def routes_from_scores(self, scores: np.ndarray, specialists: Mapping[str, str]) -> list[Route]:
        """The shared decision rule: argmax, then the parent unless confident AND served
        (a parent domain is never served, however confident)."""
        routes = []
        for row in scores:
            best = int(np.argmax(row))
            domain, confidence = self.domains[best], float(row[best])
            routes.append(Route(domain, specialists.get(domain) if self.leaves_parent(domain, confidence) else None,
                                confidence))
        return routes

    def leaves_parent(self, domain: str, confidence: float) -> bool:
        """The shared decision rule's test: a decision leaves the parent when it is confident and about a
        niche (the ecosystem, the server and a shadow policy's log all ask this)."""
        return confidence >= self.threshold and domain not in self.parent_domains

    def leak_scores(self, scores: np.ndarray) -> np.ndarray:
        """(N,) the best score where the argmax is a niche, 0 where it is a parent domain: a row
        leaves the parent exactly when this is >= the threshold (calibration and evaluation use it)."""
        best = scores.argmax(axis=1)
        parent_columns = np.isin(np.array(self.domains), self.parent_domains)
        return np.where(parent_columns[best], 0.0, scores.max(axis=1))

    @property
    def niches(self) -> list[str]:
        """The domains a query may be served in: every known domain but the parent's."""
        return [d for d in self.domains if d not in self.parent_domains]


def evenly(texts: list[str], limit: int) -> list[str]:
    """At most ``limit`` texts spaced evenly through ``texts`` (all of them when limit is 0): a training
    subsample that keeps the rows' mix, or the queries a latency measurement times."""
    if limit <= 0 or len(texts) <= limit:
        return list(texts)
    return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, num=limit)]


POLICIES: dict[str, type[Policy]] = {}


def register_policy_class(name: str):
    """Decorator adding a policy class to the table; names are unique and lower-case."""
    def add(cls: type[Policy]) -> type[Policy]:
        if name != name.lower() or not name:
            raise ValueError(f"policy names are lower-case and non-empty: {name!r}")
        if name in POLICIES:
            raise ValueError(f"router policy {name!r} is already registered")
        cls.name = name
        POLICIES[name] = cls
        return cls
    return add


def policy_class(name: str) -> type[Policy]:
    """The class registered under ``name``; unknown names are refused with the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown router policy {name!r}; known: {', '.join(sorted(POLICIES))}") from None


@register_policy_class("centroid")
class CentroidPolicy(Policy):
    """Nearest centroid: score = cosine similarity to each domain's mean embedding."""

    def __init__(self, domains, centroids: np.ndarray, **kw):
        super().__init__(domains, **kw)
        self.centroids = np.asarray(centroids, dtype=np.float32)  # (D, 384), unit rows

    @classmethod
    def fit(cls, domains, vectors: dict[str, np.ndarray], params: dict, **kw) -> CentroidPolicy:
        means = np.stack([vectors[d].mean(axis=0) for d in domains])
        return cls(domains, means / np.linalg.norm(means, axis=1, keepdims=True), **kw)

    def scores(self, texts):
        return self._embed(texts) @ self.centroids.T  # (N, 384) @ (384, D) -> (N, D)

    def tensors(self):
        return {"centroids": self.centroids}


@register_policy_class("knn")
class KnnPolicy(Policy):
    """k nearest labelled examples (cosine): score_d = sum of the similarities of the
    neighbours labelled d, divided by k, so a unanimous, close neighbourhood scores ~1."""

    def __init__(self, domains, examples: np.ndarray, labels: np.ndarray, k: int = 10, **kw):
        super().__init__(domains, **kw)
        self.examples = np.asarray(examples, dtype=np.float32)  # (M, 384)
        self.labels = np.asarray(labels, dtype=np.int64)  # (M,) index into domains
        self.k = int(k)

    @classmethod
    def fit(cls, domains, vectors, params, **kw) -> KnnPolicy:
        examples = np.concatenate([vectors[d] for d in domains])
        labels = np.concatenate([np.full(len(vectors[d]), i) for i, d in enumerate(domains)])
        return cls(domains, examples, labels, k=params.get("k", 10), **kw)

    def scores(self, texts):
        sims = self._embed(texts) @ self.examples.T  # (N, M)
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]  # (N, k) unordered nearest
        out = np.zeros((len(sims), len(self.domains)), dtype=np.float32)
        for row in range(len(sims)):
            np.add.at(out[row], self.labels[top[row]], sims[row, top[row]])
        return out / k

    def params(self):
        return {"k": self.k}

    def tensors(self):
        return {"examples": self.examples, "labels": self.labels}


@register_policy_class("keyword")
class KeywordPolicy(Policy):
    """Rule policy: per-domain keyword lists; score_d = hits_d / (all hits + 1), so one
    hit gives 0.5 and more agreeing hits approach 1 (the +1 keeps no-evidence at 0)."""

    uses_embeddings = False

    def __init__(self, domains, keywords: dict[str, list[str]], **kw):
        super().__init__(domains, **kw)
        self.keywords = {d: list(keywords[d]) for d in domains}
        self._sets = [set(self.keywords[d]) for d in domains]

    @classmethod
    def fit_texts(cls, domains, labelled: dict[str, list[str]], params: dict, **kw) -> KeywordPolicy:
        top = params.get("top_terms", 40)
        return cls(domains, distinctive_terms(labelled, top), **kw)

    def scores(self, texts):
        out = np.zeros((len(texts), len(self.domains)), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = TOKEN.findall(text.lower())
            out[row] = [sum(t in words for t in tokens) for words in self._sets]
        return out / (out.sum(axis=1, keepdims=True) + 1.0)

    def params(self):
        return {"keywords": self.keywords, "top_terms": max(map(len, self.keywords.values()), default=0)}


@register_policy_class("random")
class RandomPolicy(Policy):
    """The seeded baseline every other policy must beat: uniform random scores."""

    uses_embeddings = False

    def __init__(self, domains, seed: int = 0, **kw):
        super().__init__(domains, **kw)
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)

    def scores(self, texts):
        return self._rng.random((len(texts), len(self.domains))).astype(np.float32)

    def params(self):
        return {"seed": self.seed}


def distinctive_terms(labelled: dict[str, list[str]], top: int) -> dict[str, list[str]]:
    """Top terms per domain by a tf-idf-like contrast, deterministic (ties by term).

    contrast(t, d) = df_d(t) * log((df_d(t) + eps) / (max_{d' != d} df_d'(t) + eps)),
    with df the share of the domain's texts containing t: frequent in d, rare elsewhere.
    """
    eps = 1e-3
    df = {}
    for domain, texts in labelled.items():
        counts = Counter(t for text in texts for t in set(TOKEN.findall(text.lower())))
        df[domain] = {t: c / max(len(texts), 1) for t, c in counts.items()}
    keywords = {}
    for domain, own in df.items():
        contrast = {t: _contrast(own[t], max((df[o].get(t, 0.0) for o in df if o != domain), default=0.0), eps)
                    for t in own}
        ranked = sorted(own, key=lambda t: (-contrast[t], t))
        keywords[domain] = [t for t in ranked[:top] if contrast[t] > 0]
    return keywords


def _contrast(own: float, other: float, eps: float) -> float:
    """Frequent in this domain (own) and rarer in every other (other): a tf-idf-like score."""
    return own * math.log((own + eps) / (other + eps))
