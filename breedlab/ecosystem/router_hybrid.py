"""The hybrid router policy: the n-gram policy decides when it is sure, the embedding head otherwise.

A query costs the n-gram policy well under a millisecond and MiniLM 10-30 ms on 2 cores,
and the two fail differently: n-grams are near-perfect on text shaped like the corpus
(code, licences, man pages) and unsure on paraphrase; the embedding head generalises to
how people ask. So the cascade:

1. the n-gram part (``linear``) scores the text; if its best *niche* score reaches its own
   strict threshold (calibrated for 99% precision and at most 1% out-of-domain leak), its
   decision stands: the text is not embedded at all;
2. otherwise the embedding head (``embed-linear``) decides, with its own threshold
   (the usual 95% precision / 5% leak rule), including sending the text to the parent.

Both parts' probabilities are mapped onto one scale where each part's threshold lands
on 0.5 (``common_scale``, monotone), so the shared decision rule (``Policy.route``, one
threshold) reproduces the cascade exactly: the hybrid's threshold is 0.5.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from .router_head import EmbedLinearPolicy
from .router_linear import LinearPolicy, fit_softmax
from .router_policies import Policy, register_policy_class

COMMON_THRESHOLD = 0.5


def evenly(texts: list[str], limit: int) -> list[str]:
    """At most ``limit`` texts spaced evenly through ``texts`` (all of them when limit is 0)."""
    if limit <= 0 or len(texts) <= limit:
        return list(texts)
    return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, num=limit)]


def common_scale(p: np.ndarray, threshold: float) -> np.ndarray:
    """Map probabilities so that ``threshold`` goes to 0.5, [0, t) onto [0, 0.5), [t, 1] onto [0.5, 1].

    A threshold above 1 (an unreachable calibration) maps every score below 0.5."""
    below = 0.5 * p / max(threshold, 1e-9)
    above = 0.5 + 0.5 * (p - threshold) / max(1.0 - threshold, 1e-9)
    return np.where(p >= threshold, above, below).astype(np.float32)


@register_policy_class("hybrid")
class HybridPolicy(Policy):
    """Cascade of a ``linear`` and an ``embed-linear`` policy over the same domains."""

    def __init__(self, domains, lexical_weights, lexical_bias, head_weights, head_bias, *,
                 lexical: dict | None = None, head: dict | None = None, lexical_threshold: float = 0.0,
                 head_threshold: float = 0.0, lexical_target: float = 0.99, lexical_leak: float = 0.01,
                 head_rows: int = 0, **kw):
        kw.setdefault("threshold", COMMON_THRESHOLD)
        super().__init__(domains, **kw)
        shared = {"parent_domains": self.parent_domains}
        self.lexical = LinearPolicy(domains, lexical_weights, lexical_bias, **(lexical or {}),
                                    threshold=lexical_threshold, **shared)
        self.head = EmbedLinearPolicy(domains, head_weights, head_bias, **(head or {}),
                                      threshold=head_threshold, **shared)
        self.lexical_target, self.lexical_leak = float(lexical_target), float(lexical_leak)
        self.head_rows = int(head_rows)
        self.last_embedded = 0  # rows of the latest ``scores`` call that needed an embedding

    @classmethod
    def fit_parts(cls, domains, labelled: dict[str, list[str]], params: dict, *, embedder,
                  parent_domains) -> HybridPolicy:
        if embedder is None:
            raise ValueError("policy 'hybrid' needs an embedder")
        lexical = LinearPolicy.fit_texts(domains, labelled, dict(params.get("lexical", {})))
        head_params = dict(params.get("head", {}))
        # Embedding every training row costs ~40 ms a text here: the head may learn from an even
        # subsample of each domain's rows (same snippet/query mix), the n-gram part from all of them.
        rows = {d: evenly(labelled[d], int(params.get("head_rows", 0))) for d in domains}
        texts = [t for d in domains for t in rows[d]]
        y = np.array([i for i, d in enumerate(domains) for _ in rows[d]], dtype=np.int64)
        l2, max_iter = float(head_params.get("l2", 1e-4)), int(head_params.get("max_iter", 500))
        W, b = fit_softmax(sparse.csr_matrix(embedder.embed(texts)), y, len(domains), l2=l2, max_iter=max_iter)
        return cls(domains, lexical.weights, lexical.bias, W, b, lexical=lexical.params(),
                   head={"l2": l2, "max_iter": max_iter}, embedder=embedder, embedder_name=embedder.name,
                   parent_domains=parent_domains,
                   **{k: params[k] for k in ("lexical_target", "lexical_leak", "head_rows") if k in params})

    def calibrate_parts(self, calibrate, validation, *, out_of_domain, target, ood_leak, min_support) -> float:
        """Calibrate the n-gram part strictly, the head by the usual rule; the hybrid cuts at 0.5."""
        calibrate(self.lexical, validation, out_of_domain=out_of_domain, target=self.lexical_target,
                  ood_leak=self.lexical_leak, min_support=min_support)
        self.head.embedder = self.embedder
        calibrate(self.head, validation, out_of_domain=out_of_domain, target=target, ood_leak=ood_leak,
                  min_support=min_support)
        self.threshold = COMMON_THRESHOLD
        self.calibration = {"rule": "cascade: lexical if its niche score >= its threshold, else the head",
                            "lexical": self.lexical.calibration, "head": self.head.calibration}
        return self.threshold

    def lexical_confident(self, lexical_scores: np.ndarray) -> np.ndarray:
        """(N,) bool: rows the n-gram part decides alone."""
        return self.lexical.leak_scores(lexical_scores) >= self.lexical.threshold

    def scores(self, texts):
        lexical = self.lexical.scores(texts)
        decided = self.lexical_confident(lexical)
        out = common_scale(lexical, self.lexical.threshold)
        unsure = np.flatnonzero(~decided)
        self.last_embedded = len(unsure)
        if len(unsure):
            vectors = self._embed([texts[i] for i in unsure])
            out[unsure] = common_scale(self.head.scores_from_embeddings(vectors), self.head.threshold)
        return out

    def params(self):
        return {"lexical": self.lexical.params(), "head": self.head.params(),
                "lexical_threshold": self.lexical.threshold, "head_threshold": self.head.threshold,
                "lexical_target": self.lexical_target, "lexical_leak": self.lexical_leak, "head_rows": self.head_rows}

    def tensors(self):
        return {"lexical_weights": self.lexical.weights, "lexical_bias": self.lexical.bias,
                "head_weights": self.head.weights, "head_bias": self.head.bias}
