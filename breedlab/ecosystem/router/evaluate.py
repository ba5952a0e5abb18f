"""Evaluate a router policy like any other candidate: accuracy on held-out labelled
queries and what routing costs per query (measured wall time of featurise/embed + score).

Two accuracies, because the threshold trades one against the parent share:
``accuracy`` is the policy's argmax domain against the truth over ALL in-domain
queries (the issue's "routing accuracy": does the router know the domain?), and
``served_accuracy`` counts a query as right only when it is confident AND its argmax
is the true domain, i.e. it would reach the true specialist; a query kept on the
parent counts as not routed (served_accuracy = accuracy_confident * (1 - parent_share)).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from breedlab.ecosystem.router.base import _flatten
from breedlab.ecosystem.router.policies import Policy, evenly


@dataclass
class RoutingReport:
    """Held-out routing quality and cost of one policy."""

    policy: str
    accuracy: float  # argmax domain == true domain, over all in-domain queries
    accuracy_confident: float | None  # the same over queries above the threshold (None: none were)
    parent_share: float  # share of in-domain queries sent to the parent (below threshold)
    served_accuracy: float  # confident AND right, over all in-domain queries (parent = not routed)
    ood_parent_share: float | None  # share of out-of-domain queries kept on the parent
    per_domain: dict[str, float]  # true domain -> accuracy
    confusion: list[list[int]]  # [true][predicted], columns in ``domains`` order
    domains: list[str]
    overhead_ms_p50: float  # one query at a time: embed + score, as served
    overhead_ms_p95: float
    cost_per_query_ms: float  # mean of the single-query overheads
    threshold: float
    queries: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_policy(policy: Policy, labelled_heldout: dict[str, list[str]], *, embedder: Any = None,
                    out_of_domain: list[str] | None = None, timing_queries: int = 100) -> RoutingReport:
    """Score held-out queries in one batch; time ``timing_queries`` of them one by one.

    ``embedder`` (if given) is bound to an embedding policy for this evaluation.
    """
    if embedder is not None and policy.uses_embeddings:
        policy.embedder = embedder
    labelled_heldout = {d: t for d, t in labelled_heldout.items() if t}  # an empty set is no evidence
    texts, truth = _flatten(labelled_heldout, policy.domains)
    scores = policy.scores(texts)  # (N, D)
    predicted, confident = scores.argmax(axis=1), policy.leak_scores(scores) >= policy.threshold
    correct = predicted == truth
    D = len(policy.domains)
    confusion = np.zeros((D, D), dtype=np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    per_domain = {d: float(correct[truth == i].mean()) for i, d in enumerate(policy.domains) if (truth == i).any()}
    ood_parent = None
    if out_of_domain:
        ood_parent = float((policy.leak_scores(policy.scores(out_of_domain)) < policy.threshold).mean())
    latencies = single_query_latencies(policy, texts, timing_queries)
    return RoutingReport(
        policy=policy.name, accuracy=float(correct.mean()),
        accuracy_confident=float(correct[confident].mean()) if confident.any() else None,
        parent_share=float(1.0 - confident.mean()), served_accuracy=float((correct & confident).mean()),
        ood_parent_share=ood_parent,
        per_domain=per_domain, confusion=confusion.tolist(), domains=list(policy.domains),
        overhead_ms_p50=float(np.percentile(latencies, 50)), overhead_ms_p95=float(np.percentile(latencies, 95)),
        cost_per_query_ms=float(np.mean(latencies)), threshold=policy.threshold, queries=len(texts),
    )


def single_query_latencies(policy: Policy, texts: list[str], count: int) -> np.ndarray:
    """Milliseconds to route each of ``count`` evenly spaced texts alone (batch of one),
    because a served query arrives alone; one warm-up call first (lazy init, caches)."""
    picks = evenly(texts, count)
    policy.routes_from_scores(policy.scores(picks[:1]), {})
    return time_routes(policy, picks)


def time_routes(policy: Policy, picks: list[str]) -> np.ndarray:
    """Milliseconds of each routing decision, one text at a time."""
    times = []
    for text in picks:
        start = time.perf_counter()
        policy.routes_from_scores(policy.scores([text]), {})
        times.append((time.perf_counter() - start) * 1000.0)
    return np.array(times)
