"""Merge (lifecycle): two specialists whose domains converged become one model, if that beats keeping both.

``consider_merge(a, b)`` runs, top to bottom, and leaves an event with its reason at every exit:

1. **Converged?** The caller's centroid cosine similarity of the two domains
   (the task monitor's centroids) must be >= ``min_centroid_similarity``; then
   each specialist's score on the other's frozen suite must reach ``min_cross_ratio``
   of the other's own (``cross_evaluation``, :mod:`breedlab.ecosystem.merge.evidence`).
   No -> ``merge-skipped`` on both specialists, with the numbers.
2. **How?** ``ops.merge`` (weight merge: ``method`` linear or TIES) when
   ``merge_problems`` finds nothing; else ``ops.merge_distill`` if
   ``allow_distill``; else ``merge-refused`` on both, naming every problem.
3. **Does it beat keeping both?** The merged model M and both specialists are
   measured on both domains' frozen suites and judged by ``merge_rule`` (the rule
   is documented in :mod:`breedlab.ecosystem.merge.rule`): not significantly worse
   than each specialist, every hard gate passed, cheaper than keeping both. Fails ->
   evidence packets (outcome no-op, or reject on a gate), M rejected,
   ``merge-refused`` on both; a and b stay as they are.
4. **Commit.** Evidence packets (outcome promote) per niche; after checking the
   approver, the packets and the post-merge budgets, both specialists are
   retired ("merged into <M>", data niche + successor) and M is promoted
   champion through ``governance.promotion`` in the first niche. The lifecycle
   is one state per artifact and has no champion -> champion move, so M cannot
   be crowned again in the second niche: a ``merged`` event on M names every
   niche it now serves, and its recipe's ``domains`` lists them.

Events (every one with a reason; actor: the approver, except M's ``registered``, by the breeder):
``merge-skipped`` (a and b; data partner, niche, statistics), ``merge-refused`` (a and b; data
partner, niche, stage = compatibility | evaluation | governance, reasons, merged, method,
evidence), ``rejected`` (M, when it was made and refused; data merge_of, evidence), ``retired``
(a and b; data niche, successor), ``promoted`` (M, by ``governance.promotion.promote``) and
``merged`` (M; data niches, replaces {niche: id}, method, evidence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from breedlab.ecosystem.merge.config import MergeConfig, load_merge_config
from breedlab.ecosystem.merge.evidence import (
    Consideration,
    cross_evaluation,
    cross_shortfall,
    measure,
    measure_ensembles,
    measure_merged,
    prepare,
    say,
    write_evidence,
)
from breedlab.ecosystem.merge.rule import NOT_COMPARED, domain_verdict, merge_rule
from breedlab.evaluation.decision import Decision
from breedlab.registry import Artifact, Event, Registry, RegistryError

__all__ = ["NOT_COMPARED", "MergeConfig", "MergeOutcome", "consider_merge", "cross_evaluation", "domain_verdict",
           "load_merge_config", "merge_rule", "niche_of"]


@dataclass
class MergeOutcome:
    """What ``consider_merge`` did: merged, skipped or refused, why, and the events it left."""

    outcome: str
    reasons: list[str]
    merged: Artifact | None = None
    method: str | None = None
    """linear | ties | distill, when a merged model was made."""
    evidence: dict[str, str] = field(default_factory=dict)
    """Niche -> evidence packet id."""
    events: list[Event] = field(default_factory=list)
    statistics: dict = field(default_factory=dict)


def consider_merge(registry: Registry, home, a_id: str, b_id: str, *, centroid_similarity: float,
                   config: MergeConfig, governance, approver: str, breeder: str, suites: dict | None = None,
                   console=None, evaluation=None, isolate: bool = True, latency=None) -> MergeOutcome:
    """Steps 1-4 of the module docstring for the active specialists ``a_id`` and ``b_id``.

    ``suites``: domain -> {"lm", "cloze", "retention"} -> eval-suite id (built from the test splits if None).
    ``isolate`` and ``latency`` are run options of ``measure_candidate`` (by default each model is measured
    in its own process); ``evaluation`` defaults to the shipped evaluation config.
    """
    run = _start(registry, home, a_id, b_id, config, governance, approver, breeder, evaluation, console)
    run.statistics["centroid_similarity"] = centroid_similarity
    if centroid_similarity < config.min_centroid_similarity:
        return _skip(run, f"centroid similarity {centroid_similarity:.4f} < {config.min_centroid_similarity}")
    prepare(run, suites, isolate=isolate, latency=latency)
    own = {m.id: {d: measure(run, m.id, d) for d in run.suites} for m in run.pair}
    converged, run.statistics["cross_evaluation"] = cross_evaluation(own, run.domain, config)
    if not converged:
        return _skip(run, f"centroid similarity {centroid_similarity:.4f} >= {config.min_centroid_similarity} but "
                          + cross_shortfall(run.statistics["cross_evaluation"], config))
    merged, method, problems = _make_merged(run)
    if merged is None:
        return _refuse(run, "compatibility", problems)
    specialist, merged_fit, gates, costs = measure_merged(run, merged, own)
    ensemble = measure_ensembles(run) if config.ensemble_baseline else None
    decision = merge_rule(specialist, merged_fit, gates, costs, config, run.evaluation, ensemble)
    run.statistics["decision"] = decision.statistics
    evidence = write_evidence(run, merged, specialist, merged_fit, gates, decision)
    if decision.outcome != "promote":
        return _refuse(run, "evaluation", decision.reasons[1:], merged=merged, method=method, evidence=evidence)
    return _commit(run, merged, method, decision, evidence)


def niche_of(registry: Registry, artifact: Artifact) -> str:
    """The niche an active specialist serves: the niche of its newest promotion."""
    from breedlab.governance.niche import ACTIVE_STATES

    if artifact.state not in ACTIVE_STATES:
        raise RegistryError(f"{artifact.id[:12]} is {artifact.state}, not an active specialist")
    for event in reversed(registry.events(artifact.id)):
        if event.type == "promoted" and event.data.get("niche"):
            return event.data["niche"]
    raise RegistryError(f"{artifact.id[:12]} was never promoted into a niche")


def _start(registry, home, a_id, b_id, config, governance, approver, breeder, evaluation, console) -> Consideration:
    """Check who acts and what is merged before any work: both active, different domains."""
    from breedlab.evaluation.gates import load_evaluation_config
    from breedlab.governance.promotion import AuthorityError, check_approver
    from breedlab.operators.merge_checks import common_base

    check_approver(governance, approver)
    if breeder == approver:
        raise AuthorityError(f"{approver!r} cannot both breed the merged model and approve it")
    pair = (registry.get(a_id), registry.get(b_id))
    domain = {m.id: m.manifest.recipe.get("domain") for m in pair}
    if None in domain.values() or len(set(domain.values())) != 2:
        raise RegistryError(f"a merge needs two specialists of two named domains, got {list(domain.values())}")
    run = Consideration(registry, home, config, governance, approver, breeder, evaluation or load_evaluation_config(),
               console, pair, {m.id: niche_of(registry, m) for m in pair}, domain,
               common_base(registry, [m.id for m in pair]))
    say(run, f"merge? {pair[0].manifest.name} ({domain[pair[0].id]}) + {pair[1].manifest.name} "
              f"({domain[pair[1].id]})")
    return run


def _make_merged(run: Consideration) -> tuple[Artifact | None, str | None, list[str]]:
    """Step 2: (merged model, method, []) or (None, None, every problem)."""
    from breedlab.cmg.recipe import RunOptions
    from breedlab.operators.merge import IncompatibleMerge, MergeRecipe, merge_problems
    from breedlab.operators.merge_distill import MergeDistillRecipe
    from breedlab.operators.table import get_operator

    if run.base is None:
        return None, None, ["lineage: the two specialists share no ancestor model to merge over"]
    models, config = tuple(m.id for m in run.pair), run.config
    options = RunOptions(actor=run.breeder, progress=bool(run.console is not None and run.console.is_terminal))
    problems = merge_problems(run.registry, list(models), run.base)
    try:
        if not problems:
            recipe = MergeRecipe(models=models, method=config.method, density=config.density,
                                 scaling=config.scaling, seed=config.seed)
            return get_operator("merge")(run.registry, run.home, run.base, recipe, options).child, config.method, []
        if not config.allow_distill:
            return None, None, [*problems, "weights cannot be merged and distillation is off (allow_distill false)"]
        say(run, f"weights cannot be merged ({len(problems)} problems): distilling both into one child")
        recipe = MergeDistillRecipe(models=models, **{"seed": config.seed, **config.distill})
        outcome = get_operator("merge-distill")(run.registry, run.home, run.base, recipe, options)
    except IncompatibleMerge as exc:
        return None, None, [*problems, *exc.problems]
    if outcome.child is None:
        return None, None, [*problems, f"distillation interrupted at step {outcome.result.steps_done}; run again"]
    return outcome.child, "distill", []


def _skip(run: Consideration, reason: str) -> MergeOutcome:
    for model, other in (run.pair, run.pair[::-1]):
        run.events.append(run.registry.record(
            "merge-skipped", model.id, actor=run.approver, reason=f"no merge with {other.id[:12]}: {reason}",
            data={"partner": other.id, "niche": run.niche[model.id], "statistics": run.statistics}))
    say(run, f"skipped: {reason}")
    return MergeOutcome("skipped", [reason], events=run.events, statistics=run.statistics)


def _refuse(run: Consideration, stage: str, reasons: list[str], *, merged: Artifact | None = None, method: str | None = None,
            evidence: dict[str, str] | None = None) -> MergeOutcome:
    """``merge-refused`` on both specialists (their states unchanged); a made merged model is rejected."""
    data = {"stage": stage, "reasons": reasons, "merged": merged.id if merged else None, "method": method,
            "evidence": evidence or {}}
    if merged is not None and run.registry.get(merged.id).state == "candidate":
        run.events.append(run.registry.transition(
            merged.id, "rejected", event_type="rejected", actor=run.approver,
            reason=f"merge refused ({stage}): " + "; ".join(reasons),
            data={"merge_of": [m.id for m in run.pair], "evidence": evidence or {}}))
    for model, other in (run.pair, run.pair[::-1]):
        run.events.append(run.registry.record(
            "merge-refused", model.id, actor=run.approver,
            reason=f"merge with {other.id[:12]} refused ({stage}): " + "; ".join(reasons),
            data={**data, "partner": other.id, "niche": run.niche[model.id]}))
    say(run, f"refused ({stage}): " + "; ".join(reasons))
    return MergeOutcome("refused", reasons, merged, method, evidence or {}, run.events, run.statistics)


def _commit(run: Consideration, merged: Artifact, method: str, decision: Decision, evidence: dict[str, str]) -> MergeOutcome:
    """Step 4: check what promotion will check, retire both specialists, crown the merged model."""
    from breedlab.governance.promotion import passing_evidence, promote

    for niche in evidence:
        passing_evidence(run.registry, merged.id, niche)  # EvidenceError now, before any state changes
    problems = _budget_problems(run, merged)
    if problems:
        return _refuse(run, "governance", problems, merged=merged, method=method, evidence=evidence)
    for model in run.pair:
        run.events.append(run.registry.transition(
            model.id, "retired", event_type="retired", actor=run.approver, reason=f"merged into {merged.id[:12]}",
            data={"niche": run.niche[model.id], "successor": merged.id}))
    niches = list(dict.fromkeys(run.niche[m.id] for m in run.pair))
    summary = "; ".join(decision.reasons[1:-1])
    for niche in niches:  # crowned in every niche it replaces a specialist in
        run.events += promote(run.registry, run.governance, merged.id, "champion", niche=niche,
                              approver=run.approver, reason=f"{method} merge of {' + '.join(run.domain.values())}: "
                                                            f"{summary}")
    run.events.append(run.registry.record(
        "merged", merged.id, actor=run.approver,
        reason=f"serves {', '.join(niches)} in place of {', '.join(m.id[:12] for m in run.pair)}",
        data={"niches": niches, "replaces": {run.niche[m.id]: m.id for m in run.pair}, "method": method,
              "evidence": evidence}))
    say(run, f"merged into {merged.manifest.name} {merged.id[:12]} ({method}); both specialists retired")
    return MergeOutcome("merged", decision.reasons, run.registry.get(merged.id), method, evidence, run.events,
                        run.statistics)


def _budget_problems(run: Consideration, merged: Artifact) -> list[str]:
    """The governance budgets after the merge (both specialists gone, the merged model active)."""
    from breedlab.governance.niche import active_children, active_weight_bytes

    def weights(artifact: Artifact) -> int:  # counted as governance counts them
        return sum(e.size for n, e in artifact.manifest.files.items() if n.endswith(".safetensors"))

    problems = []
    if run.registry.get(merged.id).state != "candidate":
        state = run.registry.get(merged.id).state
        problems.append(f"{merged.id[:12]} is {state}, not a candidate: it was judged before")
    total = active_weight_bytes(run.registry) - sum(weights(m) for m in run.pair) + weights(merged)
    if total > run.governance.max_total_weight_bytes:
        problems.append(f"active weights after the merge would total {total:,} bytes "
                        f"(budget {run.governance.max_total_weight_bytes:,})")
    for niche in dict.fromkeys(run.niche.values()):
        if len(active_children(run.registry, niche)) > run.governance.max_children_per_niche:
            problems.append(f"niche {niche!r} is over its active-children budget")
    return problems
