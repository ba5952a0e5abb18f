"""The linear router policy: multinomial logistic regression on hashed word and
character n-grams. No embedding, so a query costs well under a millisecond.

Why lexical: the known domains differ in surface form as much as in meaning
(Python syntax, licence boilerplate, ICD-10 codes, man-page idiom), and character
n-grams see that form; on the real corpora this beats every MiniLM-based policy
(docs/results/routing-issue5.md), at 1-2% of their per-query cost.

Features (``HashedNgrams``): word unigrams and bigrams and character n-grams of
the lower-cased, whitespace-collapsed text, each hashed with CRC-32 (stable across
processes, unlike ``hash()``) into ``dim`` columns; values log(1 + count), rows
L2-normalised so that long and short queries score on one scale.

Model: softmax(x W + b), fitted by L-BFGS on the mean cross-entropy plus
``l2 / 2 * ||W||^2`` (the bias is not penalised), from zeros, so a fit is
deterministic. Scores are the softmax probabilities: unlike cosine scores they
are relative, so out-of-domain text is kept on the parent by the calibration
rule's out-of-domain quantile (router.py), whose effect the benchmark measures.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import asdict, dataclass

import numpy as np
from scipy import sparse
from scipy.optimize import minimize

from breedlab.ecosystem.router.policies import Policy, register_policy_class

WORD = re.compile(r"\w+|[^\w\s]")  # words, and each punctuation mark on its own
SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class HashedNgrams:
    """Text -> sparse (N, dim) hashed n-gram features (rows L2-normalised)."""

    dim: int = 2**18
    """Hashed columns; collisions are rare enough at 2**18 for ~50k training snippets."""
    char_min: int = 2
    """Shortest character n-gram."""
    char_max: int = 5
    """Longest character n-gram."""
    word_bigrams: bool = True
    """Also hash adjacent word pairs (``import os``, ``shall not``)."""

    def columns(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        """(columns, values) of one text's non-zero features."""
        lowered = text.lower()
        words = WORD.findall(lowered)
        keys = ["w " + w for w in words]
        if self.word_bigrams:
            keys += [f"b {a} {b}" for a, b in zip(words, words[1:])]
        collapsed = SPACE.sub(" ", lowered).strip()
        padded = f" {collapsed} " if collapsed else ""  # spaces mark word starts and ends
        for n in range(self.char_min, self.char_max + 1):
            keys += ["c" + padded[i:i + n] for i in range(len(padded) - n + 1)]
        hashed = np.fromiter((zlib.crc32(k.encode()) % self.dim for k in keys), dtype=np.int64, count=len(keys))
        cols, counts = np.unique(hashed, return_counts=True)
        values = np.log1p(counts.astype(np.float32))
        return cols, values / max(float(np.linalg.norm(values)), 1e-12)

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        """(N, dim) CSR matrix, one row per text."""
        pairs = [self.columns(t) for t in texts]
        indptr = np.cumsum([0] + [len(c) for c, _ in pairs])
        cols = np.concatenate([c for c, _ in pairs]) if pairs else np.zeros(0, np.int64)
        vals = np.concatenate([v for _, v in pairs]) if pairs else np.zeros(0, np.float32)
        return sparse.csr_matrix((vals, cols, indptr), shape=(len(texts), self.dim))


def fit_softmax(X: sparse.csr_matrix, y: np.ndarray, classes: int, *, l2: float,
                max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by L-BFGS from zeros: (W (dim, C), b (C,))."""
    n, dim = X.shape
    onehot = np.eye(classes)[y]  # (n, C)
    Xt = X.T.tocsr()  # (dim, n): the gradient's product, converted once

    def loss_and_grad(theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = theta[:-classes].reshape(dim, classes), theta[-classes:]
        logits = X @ W + b  # (n, C)
        logits -= logits.max(axis=1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        loss = -(onehot * log_p).sum() / n + 0.5 * l2 * (W * W).sum()
        residual = (np.exp(log_p) - onehot) / n  # d loss / d logits
        grad_W = Xt @ residual + l2 * W
        return loss, np.concatenate([grad_W.ravel(), residual.sum(axis=0)])

    result = minimize(loss_and_grad, np.zeros(dim * classes + classes), jac=True, method="L-BFGS-B",
                      options={"maxiter": max_iter})
    W = result.x[:-classes].reshape(dim, classes).astype(np.float32)
    return W, result.x[-classes:].astype(np.float32)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, shifted by the row max so that exp cannot overflow."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@register_policy_class("linear")
class LinearPolicy(Policy):
    """Logistic regression on hashed n-grams; score_d = P(domain d | text), summing to 1."""

    uses_embeddings = False

    def __init__(self, domains, weights: np.ndarray, bias: np.ndarray, *, dim: int = 2**18,
                 char_min: int = 2, char_max: int = 5, word_bigrams: bool = True, l2: float = 1e-5,
                 max_iter: int = 300, **kw):
        super().__init__(domains, **kw)
        self.features = HashedNgrams(dim=int(dim), char_min=int(char_min), char_max=int(char_max),
                                     word_bigrams=bool(word_bigrams))
        self.weights = np.asarray(weights, dtype=np.float32)  # (dim, D)
        self.bias = np.asarray(bias, dtype=np.float32)  # (D,)
        self.l2, self.max_iter = float(l2), int(max_iter)
        if self.weights.shape != (self.features.dim, len(self.domains)):
            raise ValueError(f"weights {self.weights.shape} do not match dim {dim} x {len(domains)} domains")

    @classmethod
    def fit_texts(cls, domains, labelled: dict[str, list[str]], params: dict, **kw) -> LinearPolicy:
        """Fit on every labelled text; ``params`` may set the featuriser fields, l2, max_iter."""
        unknown = set(params) - {"dim", "char_min", "char_max", "word_bigrams", "l2", "max_iter"}
        if unknown:
            raise ValueError(f"unknown linear policy params: {sorted(unknown)}")
        features = HashedNgrams(**{k: params[k] for k in asdict(HashedNgrams()) if k in params})
        l2, max_iter = float(params.get("l2", 1e-5)), int(params.get("max_iter", 300))
        texts = [t for d in domains for t in labelled[d]]
        y = np.array([i for i, d in enumerate(domains) for _ in labelled[d]], dtype=np.int64)
        W, b = fit_softmax(features.transform(texts), y, len(domains), l2=l2, max_iter=max_iter)
        return cls(domains, W, b, **asdict(features), l2=l2, max_iter=max_iter, **kw)

    def scores(self, texts):
        return self.scores_of([self.features.columns(t) for t in texts])

    def scores_of(self, columns: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """(N, D) scores of texts already featurised by ``self.features.columns`` (a cascade that runs two
        policies with the same featuriser hashes each text once)."""
        out = np.empty((len(columns), len(self.domains)), dtype=np.float32)
        for row, (cols, values) in enumerate(columns):
            # a gather over the text's few hundred columns: cheaper than a sparse matmul for one query
            out[row] = values @ self.weights[cols] + self.bias
        return softmax(out)

    def params(self):
        return {**asdict(self.features), "l2": self.l2, "max_iter": self.max_iter}

    def tensors(self):
        return {"weights": self.weights, "bias": self.bias}
