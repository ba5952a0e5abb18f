"""The hybrid router policy: the n-gram policy decides when it is sure, the embedding head otherwise.

A query costs the n-gram policy well under a millisecond and MiniLM 10-30 ms on 2 cores,
and the two fail differently: n-grams are near-perfect on text shaped like the corpus
(code, licences, man pages) and unsure on paraphrase; the embedding head generalises to
how people ask. So the cascade:

1. the n-gram part (``linear``) scores the text; if the text is shaped like the corpus the
   n-grams were certified on (the shape gate, below) and its best *niche* score reaches its
   own strict threshold (calibrated for 99% precision and at most 1% out-of-domain leak), its
   decision stands: the text is not embedded at all;
2. otherwise the embedding part decides, with its own threshold (the usual 95% precision /
   5% leak rule), including sending the text to the parent. It is ``embed-linear`` (a
   softmax head on the embedding) or ``knn`` (the nearest labelled rows), param ``fallback``.

The shape gate: n-gram confidence is calibrated on validation *snippets*, and on short
questions it was confidently wrong ("What does chmod 755 do?" to medical at 99%-precision
confidence; 15 of 186 hand-written questions, issue 12's first run). A second hashed n-gram
logistic regression, fitted on the training rows' shapes (synthetic queries vs snippets), says
whether a text reads like a question or request; the n-gram part may decide only the texts it
calls snippets. It reuses the n-gram features, so it costs one more dot product. Without
query-shaped training rows (a pico lab) there is no gate.

Both parts' probabilities are mapped onto one scale where each part's threshold lands
on 0.5 (``common_scale``, monotone), so the shared decision rule (``Policy.route``, one
threshold) reproduces the cascade exactly: the hybrid's threshold is 0.5.
"""

from __future__ import annotations

import numpy as np

from breedlab.ecosystem.router.head import EmbedLinearPolicy
from breedlab.ecosystem.router.linear import LinearPolicy
from breedlab.ecosystem.router.policies import KnnPolicy, Policy, evenly, register_policy_class

COMMON_THRESHOLD = 0.5
FALLBACKS = ("embed-linear", "knn")
SHAPES = ("query", "snippet")  # the shape gate's classes, in column order


def common_scale(p: np.ndarray, threshold: float) -> np.ndarray:
    """Map probabilities so that ``threshold`` goes to 0.5, [0, t) onto [0, 0.5), [t, 1] onto [0.5, 1].

    A threshold above 1 (an unreachable calibration) maps every score below 0.5."""
    below = 0.5 * p / max(threshold, 1e-9)
    above = 0.5 + 0.5 * (p - threshold) / max(1.0 - threshold, 1e-9)
    return np.where(p >= threshold, above, below).astype(np.float32)


@register_policy_class("hybrid")
class HybridPolicy(Policy):
    """Cascade of a ``linear`` and an embedding policy (``embed-linear`` or ``knn``) over the same domains."""

    def __init__(self, domains, lexical_weights, lexical_bias, head_weights=None, head_bias=None, *,
                 head_examples=None, head_labels=None, shape_weights=None, shape_bias=None,
                 lexical: dict | None = None, head: dict | None = None, lexical_threshold: float = 0.0,
                 head_threshold: float = 0.0, lexical_target: float = 0.99, lexical_leak: float = 0.01,
                 head_rows: int = 0, fallback: str = "embed-linear", **kw):
        kw.setdefault("threshold", COMMON_THRESHOLD)
        super().__init__(domains, **kw)
        shared = {"parent_domains": self.parent_domains}
        self.lexical = LinearPolicy(domains, lexical_weights, lexical_bias, **(lexical or {}),
                                    threshold=lexical_threshold, **shared)
        if fallback not in FALLBACKS:
            raise ValueError(f"unknown hybrid fallback {fallback!r}; known: {', '.join(FALLBACKS)}")
        self.fallback = fallback
        if fallback == "knn":
            self.head = KnnPolicy(domains, head_examples, head_labels, **(head or {}), threshold=head_threshold,
                                  **shared)
        else:
            self.head = EmbedLinearPolicy(domains, head_weights, head_bias, **(head or {}),
                                          threshold=head_threshold, **shared)
        # (dim, 2) columns [query, snippet] of the shape gate, or None: no gate. It is built with the n-gram
        # part's featuriser, so one hashing of a text serves both (``scores``).
        self.shape = None if shape_weights is None else LinearPolicy(
            list(SHAPES), shape_weights, shape_bias, **(lexical or {}))
        self.lexical_target, self.lexical_leak = float(lexical_target), float(lexical_leak)
        self.head_rows = int(head_rows)
        self.last_embedded = 0  # rows of the latest ``scores`` call that needed an embedding

    @classmethod
    def fit_parts(cls, domains, labelled: dict[str, list[str]], params: dict, *, embedder,
                  parent_domains, query_texts: frozenset = frozenset()) -> HybridPolicy:
        """Fit the n-gram part on every row, the embedding part on ``head_rows`` per domain, and the
        shape gate on ``query_texts`` (the rows that are synthetic queries) against the rest."""
        if embedder is None:
            raise ValueError("policy 'hybrid' needs an embedder")
        unknown = set(params) - {"lexical", "head", "head_rows", "fallback", "lexical_target", "lexical_leak"}
        if unknown:
            raise ValueError(f"unknown hybrid policy params: {sorted(unknown)}")
        lexical = LinearPolicy.fit_texts(domains, labelled, dict(params.get("lexical", {})))
        fallback = params.get("fallback", "embed-linear")
        # Embedding every training row costs ~40 ms a text here: the embedding part may learn from an even
        # subsample of each domain's rows (same snippet/query mix), the n-gram part from all of them.
        rows = {d: evenly(labelled[d], int(params.get("head_rows", 0))) for d in domains}
        vectors = {d: embedder.embed(rows[d]) for d in domains}
        head_class = KnnPolicy if fallback == "knn" else EmbedLinearPolicy
        head = head_class.fit(domains, vectors, dict(params.get("head", {})))
        shape = fit_shape_gate(labelled, query_texts, lexical.params())
        tensors = {f"head_{k}": v for k, v in head.tensors().items()}
        if shape is not None:
            tensors.update(shape_weights=shape.weights, shape_bias=shape.bias)
        return cls(domains, lexical.weights, lexical.bias, **tensors, lexical=lexical.params(), head=head.params(),
                   embedder=embedder, embedder_name=embedder.name, parent_domains=parent_domains, fallback=fallback,
                   **{k: params[k] for k in ("lexical_target", "lexical_leak", "head_rows") if k in params})

    def calibrate_parts(self, calibrate, validation, *, out_of_domain, target, ood_leak, min_support) -> float:
        """Calibrate the n-gram part strictly on the texts its gate lets it decide, the embedding part by the
        usual rule on all of them; the hybrid cuts at 0.5."""
        calibrate(self.lexical, self._snippet_shaped(validation), out_of_domain=self._snippet_shaped(out_of_domain),
                  target=self.lexical_target, ood_leak=self.lexical_leak, min_support=min_support)
        self.head.embedder = self.embedder
        calibrate(self.head, validation, out_of_domain=out_of_domain, target=target, ood_leak=ood_leak,
                  min_support=min_support)
        self.threshold = COMMON_THRESHOLD
        self.calibration = {"rule": "cascade: lexical if the text reads like a snippet and its niche score >= its "
                                    "threshold, else the embedding part",
                            "lexical": self.lexical.calibration, "head": self.head.calibration}
        return self.threshold

    def _snippet_shaped(self, sets):
        """``sets`` (a list, or a dict of lists) keeping only the texts the shape gate lets the n-gram part decide."""
        if self.shape is None or not sets:
            return sets
        keep = lambda texts: [t for t, ok in zip(texts, self.snippet_shaped(texts)) if ok] if texts else []  # noqa: E731
        return {k: keep(v) for k, v in sets.items()} if isinstance(sets, dict) else keep(sets)

    def snippet_shaped(self, texts: list[str], columns: list | None = None) -> np.ndarray:
        """(N,) bool: the texts the shape gate calls snippets (all of them without a gate); ``columns``:
        the texts already featurised by the n-gram part, whose featuriser the gate shares."""
        if self.shape is None:
            return np.ones(len(texts), dtype=bool)
        columns = columns if columns is not None else [self.lexical.features.columns(t) for t in texts]
        return self.shape.scores_of(columns)[:, SHAPES.index("snippet")] >= 0.5

    def lexical_confident(self, lexical_scores: np.ndarray, texts: list[str], columns: list | None = None) -> np.ndarray:
        """(N,) bool: rows the n-gram part decides alone (snippet-shaped and confident)."""
        return (self.lexical.leak_scores(lexical_scores) >= self.lexical.threshold) \
            & self.snippet_shaped(texts, columns)

    def scores(self, texts):
        columns = [self.lexical.features.columns(t) for t in texts]  # hashed once, for both n-gram models
        lexical = self.lexical.scores_of(columns)
        decided = self.lexical_confident(lexical, texts, columns)
        out = common_scale(lexical, self.lexical.threshold)
        unsure = np.flatnonzero(~decided)
        self.last_embedded = len(unsure)
        if len(unsure):
            self.head.embedder = self.embedder
            head = self.head.scores([texts[i] for i in unsure])
            out[unsure] = common_scale(head, self.head.threshold)
        return out

    def params(self):
        return {"lexical": self.lexical.params(), "head": self.head.params(),
                "lexical_threshold": self.lexical.threshold, "head_threshold": self.head.threshold,
                "lexical_target": self.lexical_target, "lexical_leak": self.lexical_leak, "head_rows": self.head_rows,
                "fallback": self.fallback}

    def tensors(self):
        out = {"lexical_weights": self.lexical.weights, "lexical_bias": self.lexical.bias,
               **{f"head_{k}": v for k, v in self.head.tensors().items()}}
        if self.shape is not None:
            out.update(shape_weights=self.shape.weights, shape_bias=self.shape.bias)
        return out


def fit_shape_gate(labelled: dict[str, list[str]], query_texts: frozenset, lexical_params: dict):
    """A ``linear`` policy over SHAPES: the training rows that are synthetic queries vs the others
    (None when there are none), with the n-gram part's featuriser and regularisation."""
    rows = [t for texts in labelled.values() for t in texts]
    shaped = {"query": sorted({t for t in rows if t in query_texts}),
              "snippet": sorted({t for t in rows if t not in query_texts})}
    if not shaped["query"] or not shaped["snippet"]:
        return None
    return LinearPolicy.fit_texts(list(SHAPES), shaped, dict(lexical_params))
