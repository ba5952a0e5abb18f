"""Router policies as candidates: fit one, vary one, judge it on the frozen suite, promote it.

A router policy is a population member like a child (seed 001 names router-policy
variants as one of the four candidate operators): it is registered as a
``candidate``, measured on the frozen routing suite against the champion policy
(evidence.py) with the result as a ``routing`` packet, shadowed on live
traffic (shadow.py), and crowned by the approver through the same
``governance.promote`` as a child, in the niche ``router``. The server and the demo
route by the champion policy only.

The ``router-variant`` operator (``router_variant``) makes a candidate from the
champion in one of three ways: ``refit`` (the same kind, refitted with the newest
labelled live traffic), ``threshold`` (re-calibrated for another precision target)
or ``policy`` (another kind of policy on the same data). It produces a policy, not
a model, so it is not in the model operators' table (operators/table.py), whose contract
is weights in, weights out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from breedlab.ecosystem.query_synth import query_texts
from breedlab.ecosystem.router.base import UNREACHABLE, calibrate, fit, load_policy, register_policy
from breedlab.ecosystem.router.data import build_routing_suite, load_routing_suite, mixed, routing_sets
from breedlab.ecosystem.router.evidence import (
    ROUTER_NICHE,
    RouterConfig,
    decide,
    gates_as_dicts,
    measure,
    routing_gates,
)
from breedlab.governance.niche import current_champion
from breedlab.governance.promotion import promote
from breedlab.registry import Artifact, Registry

OPERATOR = "router-variant"
VARIANTS = ("refit", "threshold", "policy")


@dataclass(frozen=True)
class FitRecipe:
    """How a policy is fitted: recorded in its artifact's recipe."""

    policy: str
    niches: tuple[str, ...]
    parent_domains: tuple[str, ...]
    seed: int = 0
    query_share: float = 0.3
    target: float = 0.95
    train_snippets: int = 3000
    suite_questions: bool = True
    """Whether its routing suite holds the hand-written question sets (real domains only)."""
    params: dict = field(default_factory=dict)
    """The policy kind's own parameters (e.g. the hybrid's ``head_rows``)."""


def fit_calibrated(registry: Registry, recipe: FitRecipe, embedder, *, labelled: dict | None = None,
                   label_share: float = 0.3):
    """Fit on snippets + synthetic queries (+ ``labelled`` live traffic), calibrate on validation."""
    domains = [*recipe.niches, *recipe.parent_domains]
    sets = routing_sets(registry, domains, seed=recipe.seed, query_share=recipe.query_share,
                        train_snippets=recipe.train_snippets)
    train = sets["train"]
    for domain, texts in (labelled or {}).items():
        if domain in train and texts:
            train[domain] = mixed(train[domain], texts, label_share)
    queries = frozenset(t for texts in sets["train_queries"].values() for t in texts)
    policy = fit(recipe.policy, train, embedder=embedder, seed=recipe.seed, parent_domains=recipe.parent_domains,
                 params=recipe.params, query_texts=queries)
    calibrate(policy, {d: sets["validation"][d] for d in recipe.niches},
              out_of_domain=out_of_domain_sets(registry, sets, recipe.parent_domains), target=recipe.target)
    return policy


def out_of_domain_sets(registry: Registry, sets: dict, parent_domains) -> dict[str, list[str]]:
    """What must stay on the parent, by shape: the parent domains' validation snippets, and the parent's
    validation questions about everyday topics (clean out-of-domain questions, unlike its questions
    about book passages, which may touch a niche's subject); each may leak at most ``ood_leak``."""
    out = {"snippets": [t for d in parent_domains for t in sets["validation"][d]]}
    everyday = [t for d in parent_domains for t in query_texts(registry, d, "validation", topics=True)]
    if everyday:
        out["everyday questions"] = everyday
    return out


def data_ids(registry: Registry, domains) -> list[str]:
    """The train/validation splits and their synthetic queries a policy learnt from."""
    return [a.id for d in domains for s in ("train", "validation", "train/queries", "validation/queries")
            for a in registry.find(kind="dataset", name=f"{d}/{s}")[:1]]


def register_candidate(registry: Registry, policy, recipe: FitRecipe, *, operator: str = "router-fit",
                       parents: tuple[str, ...] = (), extra: dict | None = None) -> Artifact:
    return register_policy(registry, policy, name=f"router/{recipe.policy}",
                           data_ids=data_ids(registry, [*recipe.niches, *recipe.parent_domains]),
                           recipe={**_recipe_fields(recipe), **(extra or {})}, operator=operator, parents=parents)


def router_variant(registry: Registry, base: Artifact, variant: str, embedder, *, labelled: dict | None = None,
                   policy: str | None = None, target: float | None = None, config: RouterConfig = RouterConfig()):
    """A candidate policy derived from ``base`` (see the module docstring); returns its artifact."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown router variant {variant!r}; known: {', '.join(VARIANTS)}")
    r = base.manifest.recipe
    recipe = FitRecipe(policy=policy if variant == "policy" and policy else r["policy"],
                       niches=tuple(r["niches"]), parent_domains=tuple(r.get("out_of_domain", [])),
                       seed=r.get("seed", 0), query_share=r.get("query_share", 0.3),
                       target=target if variant == "threshold" and target else r.get("target", 0.95),
                       train_snippets=r.get("train_snippets", 3000), suite_questions=r.get("suite_questions", True),
                       params=r.get("fit_params", {}) if variant != "policy" else {})
    labels = labelled if variant == "refit" else None
    fitted = fit_calibrated(registry, recipe, embedder, labelled=labels, label_share=config.label_share)
    extra = {"variant": variant, "base": base.id,
             "labels": {d: len(t) for d, t in (labels or {}).items()}}
    return register_candidate(registry, fitted, recipe, operator=OPERATOR, parents=(base.id,), extra=extra)


def champion_policy(registry: Registry) -> Artifact | None:
    """The router policy that routes live traffic (None: none crowned yet)."""
    return current_champion(registry, ROUTER_NICHE)


def evaluate_candidate(registry: Registry, candidate: Artifact, embedder, config: RouterConfig = RouterConfig()):
    """Measure ``candidate`` and the champion on the frozen suite; register the routing packet."""
    recipe = candidate.manifest.recipe
    suite = build_routing_suite(registry, recipe["niches"], recipe.get("out_of_domain", []),
                                questions=recipe.get("suite_questions", True))
    groups = load_routing_suite(suite)
    champion = champion_policy(registry)
    reports = {"candidate": measure(load_policy(candidate, embedder=embedder), groups, embedder,
                                    config.timing_queries)}
    reports["champion"] = measure(load_policy(champion, embedder=embedder), groups, embedder,
                                  config.timing_queries) if champion else {}
    gates = routing_gates(reports["candidate"], reports["champion"], config)
    decision = decide(reports["candidate"], reports["champion"], gates)
    from breedlab.evaluation.packets import write_routing_packet

    return write_routing_packet(registry, candidate=candidate.id, champion=champion.id if champion else None,
                                suite=suite.id, reports=reports, gates=gates_as_dicts(gates), decision=decision)


def promote_policy(registry: Registry, governance, candidate: Artifact, to: str, *, approver: str, reason: str):
    """The approver moves a policy with passing routing evidence to shadow or champion."""
    return promote(registry, governance, candidate.id, to, niche=ROUTER_NICHE, approver=approver, reason=reason)


def ensure_champion(registry: Registry, governance, recipe: FitRecipe, embedder, *, approver: str,
                    config: RouterConfig = RouterConfig(), extra: dict | None = None):
    """(policy, artifact, packet id or None) of the champion; a home without one gets ``recipe`` fitted,
    judged against the parent-only route and, if its packet says promote, crowned by ``approver``.

    A fitted policy that fails a gate is left a rejected candidate, returned with an unreachable
    threshold and no artifact: the parent serves every query, the honest outcome of a router that
    cannot be trusted."""
    champion = champion_policy(registry)
    if champion is not None:
        return load_policy(champion, embedder=embedder), champion, None
    same = [a for a in registry.find(kind="router-policy")
            if all(a.manifest.recipe.get(k) == v for k, v in _recipe_fields(recipe).items())]
    judged = next((a for a in same if a.state == "rejected"), None)
    if judged is not None:  # this recipe on this data was judged and rejected already: the verdict stands
        packets = registry.children(judged.id, kind="packet")
        return _parent_only(registry, judged, embedder), None, packets[0] if packets else None
    reuse = [a for a in same if a.state == "candidate"]
    candidate = reuse[0] if reuse else register_candidate(
        registry, fit_calibrated(registry, recipe, embedder), recipe, extra=extra)
    packet = evaluate_candidate(registry, candidate, embedder, config)
    outcome = packet.manifest.metrics["outcome"]
    if outcome != "promote":
        if registry.get(candidate.id).state != "rejected":  # the same fit, registered again, may be rejected
            registry.transition(candidate.id, "rejected", event_type="rejected", actor=approver,
                                reason=f"routing evidence {packet.id[:12]}: {outcome}")
        return _parent_only(registry, candidate, embedder), None, packet.id
    promote_policy(registry, governance, candidate, "champion", approver=approver,
                   reason=f"first router policy: routing evidence {packet.id[:12]}")
    return load_policy(registry.get(candidate.id), embedder=embedder), registry.get(candidate.id), packet.id


def _parent_only(registry: Registry, rejected: Artifact, embedder):
    """A rejected policy loaded with an unreachable threshold: it routes nothing, the parent serves all."""
    parent_only = load_policy(registry.get(rejected.id), embedder=embedder)
    parent_only.threshold = UNREACHABLE
    return parent_only


def _recipe_fields(recipe: FitRecipe) -> dict:
    """``recipe`` as its artifact records it (``router_variant`` reads it back; ``ensure_champion`` matches it)."""
    return {"policy": recipe.policy, "niches": list(recipe.niches), "out_of_domain": list(recipe.parent_domains),
            "query_share": recipe.query_share, "target": recipe.target, "seed": recipe.seed,
            "train_snippets": recipe.train_snippets, "fit_params": dict(recipe.params),
            "suite_questions": recipe.suite_questions}
