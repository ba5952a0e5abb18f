"""Judging a router policy like any other candidate: the frozen routing suite, gates, a packet.

A candidate policy is measured on every group of the routing suite (router/data.py)
and compared with the champion policy measured the same way, in the same run (no
champion: the parent-only baseline, which serves nothing and keeps everything on the
parent). The gates (``RouterConfig``, section ``router`` of ecosystem.yaml):

1. query-shaped served accuracy (synthetic queries and hand-written questions) no more
   than ``margin`` below the champion's;
2. snippet served accuracy no more than ``margin`` below the champion's;
3. the share of out-of-domain cases kept on the parent at least ``min_ood_kept`` (or the
   champion's share, if the champion itself is below it);
4. the router's own p50 cost per query at most ``max_p50_ms``, measured as served: the
   query's embedding is the monitor's, already paid (``p50_full_ms`` in the report is the
   cost of a router that embeds alone).

The decision is ``promote`` when every gate passes and the candidate serves more of the
suite correctly than the champion, ``no-op`` when it passes but is not better, and
``reject`` when a gate fails. The packet (type ``routing``) holds all of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from breedlab.ecosystem.embed import QueryEmbeddingCache
from breedlab.ecosystem.router.data import PARENT
from breedlab.ecosystem.router.evaluate import evaluate_policy, single_query_latencies, time_routes
from breedlab.ecosystem.router.policies import evenly
from breedlab.evaluation.gates import GateResult

ROUTER_NICHE = "router"


@dataclass(frozen=True)
class RouterConfig:
    """Section ``router`` of ecosystem.yaml: the gates and the online-adaptation schedule."""

    margin: float = 0.02
    min_ood_kept: float = 0.95
    max_p50_ms: float = 5.0
    timing_queries: int = 60
    refit_every_windows: int = 0
    """Windows between steward refits from labelled traffic (0: never)."""
    min_new_labels: int = 20
    label_share: float = 0.3
    """Share of a refit's training rows that labelled live queries make up (repeated as needed)."""
    min_shadow_queries: int = 20
    provenances: tuple[str, ...] = ("monitor", "feedback", "admin")
    """Label sources a refit may learn from; a label without one of these is never used."""


def measure(policy, groups: dict[str, dict[str, list[str]]], embedder, timing_queries: int) -> dict:
    """{group: report} plus "overall": served accuracy, accuracy, OOD kept on the parent, p50/p95."""
    out = {}
    for group, by_domain in groups.items():
        in_domain = {d: t for d, t in by_domain.items() if d != PARENT and d in policy.niches and t}
        ood = [t for d, texts in by_domain.items() if d == PARENT or d not in policy.niches for t in texts]
        if not in_domain:
            out[group] = {"queries": 0, "ood_queries": len(ood), "ood_parent_share": _ood_kept(policy, ood)}
            continue
        report = evaluate_policy(policy, in_domain, embedder=embedder, out_of_domain=ood or None,
                                 timing_queries=timing_queries)
        out[group] = {"queries": report.queries, "ood_queries": len(ood), "accuracy": report.accuracy,
                      "served_accuracy": report.served_accuracy, "ood_parent_share": report.ood_parent_share,
                      "p50_full_ms": report.overhead_ms_p50, "p95_full_ms": report.overhead_ms_p95,
                      "per_domain": report.per_domain}
    texts = [t for by in groups.values() for ts in by.values() for t in ts]
    shared = served_latencies(policy, texts, embedder, timing_queries)
    out["overall"] = {"p50_ms": float(np.percentile(shared, 50)), "p95_ms": float(np.percentile(shared, 95)),
                      **_pooled(out)}
    return out


def _ood_kept(policy, texts: list[str]) -> float | None:
    return float((policy.leak_scores(policy.scores(texts)) < policy.threshold).mean()) if texts else None


def _pooled(reports: dict) -> dict:
    """Served accuracy over query-shaped and snippet groups, and OOD kept over all groups (count-weighted)."""
    def pool(groups, key, count):
        pairs = [(reports[g][key], reports[g][count]) for g in groups if reports.get(g, {}).get(key) is not None
                 and reports[g][count]]
        return sum(v * n for v, n in pairs) / sum(n for _, n in pairs) if pairs else None
    return {"served_queries": pool(("queries", "questions"), "served_accuracy", "queries"),
            "served_snippets": pool(("snippets",), "served_accuracy", "queries"),
            "ood_kept": pool(tuple(reports), "ood_parent_share", "ood_queries")}


def served_latencies(policy, texts: list[str], embedder, count: int) -> np.ndarray:
    """Per-query ms of the routing decision when the monitor has already embedded the query."""
    if not policy.uses_embeddings or embedder is None:
        return single_query_latencies(policy, texts, count)
    cache = QueryEmbeddingCache(embedder)
    policy.embedder = cache
    picks = evenly(texts, count)
    cache.embed(picks)  # what the monitor did for each of these queries
    try:
        return time_routes(policy, picks)
    finally:
        policy.embedder = embedder


PARENT_ONLY = {"served_queries": 0.0, "served_snippets": 0.0, "ood_kept": 1.0, "p50_ms": 0.0}


def routing_gates(candidate: dict, champion: dict, config: RouterConfig) -> list[GateResult]:
    """The four gates of the module docstring, on the two ``measure`` results' "overall" rows."""
    c, b = candidate["overall"], champion.get("overall", PARENT_ONLY)
    gates = []
    for key, label in (("served_queries", "query-shaped served accuracy"), ("served_snippets", "snippet served accuracy")):
        limit = (b[key] or 0.0) - config.margin
        value = c[key] or 0.0
        gates.append(GateResult(key, value >= limit, round(value, 4), round(limit, 4),
                                f"{label} {value:.3f} vs champion {b[key] or 0.0:.3f} - margin {config.margin}"))
    ood_limit = min(config.min_ood_kept, b["ood_kept"] if b["ood_kept"] is not None else 1.0)
    gates.append(GateResult("ood_kept", (c["ood_kept"] or 0.0) >= ood_limit, c["ood_kept"], round(ood_limit, 4),
                            f"out-of-domain kept on the parent {c['ood_kept'] or 0.0:.3f} (at least {ood_limit:.3f})"))
    gates.append(GateResult("p50_ms", c["p50_ms"] <= config.max_p50_ms, round(c["p50_ms"], 3), config.max_p50_ms,
                            f"router p50 {c['p50_ms']:.2f} ms per query with the monitor's embedding shared"))
    return gates


def decide(candidate: dict, champion: dict, gates: list[GateResult]) -> dict:
    """promote / no-op / reject, with reasons."""
    failed = [g.reason for g in gates if not g.passed]
    if failed:
        return {"outcome": "reject", "reasons": failed}
    c, b = candidate["overall"], champion.get("overall", PARENT_ONLY)
    gain = (c["served_queries"] or 0) + (c["served_snippets"] or 0) - (b["served_queries"] or 0) - (b["served_snippets"] or 0)
    if gain > 0:
        return {"outcome": "promote", "reasons": [f"every gate passed; served accuracy +{gain:.3f} (queries + snippets)"]}
    return {"outcome": "no-op", "reasons": [f"every gate passed but it serves no better ({gain:+.3f})"]}


def gates_as_dicts(gates: list[GateResult]) -> list[dict]:
    return [asdict(g) for g in gates]
