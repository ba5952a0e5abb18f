"""Bounded online adaptation of the router, run by the steward when a window closes.

Seed 000: "Online routing adaptation is safer than online weight mutation when bounded
and observable." Bounded: the live policy never changes without evidence. Every
``refit_every_windows`` windows (ecosystem.yaml, section ``router``), if at least
``min_new_labels`` labelled queries with a trusted provenance and kept text arrived
since the last refit, the ``router-variant`` operator refits a candidate from the
champion's recipe plus those labels; it is judged on the frozen routing suite; on a
``promote`` packet the approver puts it in shadow, where its routes are recorded
beside the champion's on live traffic and never used; after ``min_shadow_queries``
the approver crowns it, or it is rejected. Observable: each step is a registry event
with its packet, and the returned record goes into the window's timeline row.
"""

from __future__ import annotations

from breedlab.ecosystem.embed import query_embedder
from breedlab.ecosystem.router.base import load_policy
from breedlab.ecosystem.router.candidates import champion_policy, evaluate_candidate, promote_policy, router_variant
from breedlab.ecosystem.router.shadow import PolicyShadow, shadow_verdict


def adapt_router(eco, authority, index: int) -> dict | None:
    """One steward step for the router (see the module docstring); a record of what it did, or None."""
    config = eco.parts.router_config
    if config is None:
        return None
    if eco.policy_shadow is not None:
        return _judge_shadow(eco, authority, config)
    if config.refit_every_windows <= 0 or (index + 1) % config.refit_every_windows or eco.parts.labels is None:
        return None
    champion = champion_policy(eco.registry)
    if champion is None:
        return None
    labels = eco.parts.labels.training_labels(config.provenances, after_id=eco.labels_seen,
                                              domains=list(eco.parts.policy.domains))
    if sum(map(len, labels.values())) < config.min_new_labels:
        return {"router": "waiting", "new_labels": sum(map(len, labels.values()))}
    eco.labels_seen = eco.parts.labels.last_id()
    candidate = router_variant(eco.registry, champion, "refit", query_embedder(), labelled=labels, config=config)
    packet = evaluate_candidate(eco.registry, candidate, query_embedder(), config)
    outcome = packet.manifest.metrics["outcome"]
    record = {"router": "refit", "candidate": candidate.id, "packet": packet.id, "outcome": outcome,
              "labels": {d: len(t) for d, t in labels.items()}}
    if outcome != "promote":
        eco.registry.transition(candidate.id, "rejected", event_type="rejected", actor=authority.approver,
                                reason=f"routing evidence {packet.id[:12]}: {outcome}")
        return record
    promote_policy(eco.registry, authority.governance, candidate, "shadow", approver=authority.approver,
                   reason=f"refit from live labels; routing evidence {packet.id[:12]}")
    eco.policy_shadow = PolicyShadow(eco.shadow_log, candidate.id, load_policy(candidate, embedder=query_embedder()))
    return record


def _judge_shadow(eco, authority, config) -> dict | None:
    shadow = eco.policy_shadow
    summary = shadow.summary(eco.parts.policy.niches)
    verdict = shadow_verdict(summary, min_queries=config.min_shadow_queries, margin=config.margin)
    if verdict == "hold":
        return None
    numbers = (f"shadow right {summary.shadow_right}/{summary.labelled} labelled live queries, champion "
               f"{summary.champion_right}; agreement {summary.agreement:.0%} over {summary.queries}")
    candidate = eco.registry.get(shadow.policy_id)
    if verdict == "promote":
        promote_policy(eco.registry, authority.governance, candidate, "champion", approver=authority.approver,
                       reason=numbers)
        eco.parts.policy = shadow.policy
        eco.refresh_routes()
    else:
        eco.registry.transition(candidate.id, "rejected", event_type="rejected", actor=eco.parts.lifecycle.actor,
                                reason=numbers)
    eco.policy_shadow = None
    return {"router": "crowned" if verdict == "promote" else "shadow rejected", "candidate": candidate.id,
            "shadow": summary.__dict__}
