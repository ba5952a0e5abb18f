"""The embedding-head router policy: a softmax classifier on MiniLM sentence embeddings.

Where the n-gram policy (linear.py) sees surface form, this head sees meaning:
"What are the symptoms of type 2 diabetes?" shares almost no n-gram with an HPO
definition, but its embedding lies near theirs. It is the same multinomial logistic
regression as the linear policy (``fit_softmax``: L-BFGS from zeros, deterministic),
on 384 dense columns instead of 2**18 hashed ones, so it fits in seconds once the
texts are embedded. Scores are its softmax probabilities.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from breedlab.ecosystem.router.linear import fit_softmax, softmax
from breedlab.ecosystem.router.policies import Policy, register_policy_class


@register_policy_class("embed-linear")
class EmbedLinearPolicy(Policy):
    """Logistic regression on unit MiniLM embeddings; score_d = P(domain d | text)."""

    def __init__(self, domains, weights: np.ndarray, bias: np.ndarray, *, l2: float = 1e-4,
                 max_iter: int = 500, **kw):
        super().__init__(domains, **kw)
        self.weights = np.asarray(weights, dtype=np.float32)  # (384, D)
        self.bias = np.asarray(bias, dtype=np.float32)  # (D,)
        self.l2, self.max_iter = float(l2), int(max_iter)

    @classmethod
    def fit(cls, domains, vectors: dict[str, np.ndarray], params: dict, **kw) -> EmbedLinearPolicy:
        unknown = set(params) - {"l2", "max_iter"}
        if unknown:
            raise ValueError(f"unknown embed-linear policy params: {sorted(unknown)}")
        l2, max_iter = float(params.get("l2", 1e-4)), int(params.get("max_iter", 500))
        X = np.concatenate([vectors[d] for d in domains])
        y = np.concatenate([np.full(len(vectors[d]), i) for i, d in enumerate(domains)])
        W, b = fit_softmax(sparse.csr_matrix(X), y, len(domains), l2=l2, max_iter=max_iter)
        return cls(domains, W, b, l2=l2, max_iter=max_iter, **kw)

    def scores(self, texts):
        return self.scores_from_embeddings(self._embed(texts))

    def scores_from_embeddings(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(vectors @ self.weights + self.bias)  # (N, 384) @ (384, D)

    def params(self):
        return {"l2": self.l2, "max_iter": self.max_iter}

    def tensors(self):
        return {"weights": self.weights, "bias": self.bias}
