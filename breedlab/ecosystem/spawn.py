"""Spawn: a detector's request becomes a bred, evaluated candidate, and only an approver moves it on.

    spawn-requested (detector)                      event on the parent, with sigma and its inputs
    -> budget check                                 population, per-niche and weight budgets (governance.yaml)
    -> breedlab lab --niche D (breeding identity)   candidates, frozen suites, fitness, evidence, release packet
    -> approver: promote --to shadow                only the release's useful specialist, only with its evidence

The breeding side ends at the release packet; the approver is a separate
identity from ``governance.yaml`` that reads the packet and promotes (or does
nothing on a no-op). A spawn that cannot start, or that ends in no-op, is an
event too (``spawn-deferred``, ``spawn-no-op``), so the log explains why a
domain with demand still has no child.

A no-op records the key of what the lab judged (its config, the champion and the
datasets). Breeding is deterministic and the lab reuses bred artifacts, so the same
key again can only give the same verdict: the spawn is deferred instead of paying
for the same measurements (minutes per model on the real parent) every cooldown.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace

from rich.console import Console

from breedlab.governance.config import GovernanceConfig
from breedlab.governance.niche import active_children, all_active_children
from breedlab.governance.promotion import promote
from breedlab.registry import Artifact, Registry


@dataclass(frozen=True)
class SpawnResult:
    domain: str
    child: Artifact | None
    """The candidate now in shadow; None when deferred or no-op."""
    release: Artifact | None
    fitness: dict
    """Artifact id -> FitnessVector of the lab's champion and candidates."""
    reason: str


def budget_problem(registry: Registry, governance: GovernanceConfig, domain: str) -> str | None:
    """Why a new child for ``domain`` cannot be admitted now (None when it can)."""
    population = all_active_children(registry)
    if len(population) >= governance.max_active_children:
        return (f"the population has {len(population)} active children (budget "
                f"{governance.max_active_children}); prune or merge first")
    niche = active_children(registry, domain)
    if len(niche) >= governance.max_children_per_niche:
        return f"niche {domain!r} has {len(niche)} active children (budget {governance.max_children_per_niche})"
    return None


def lab_key(registry: Registry, config) -> str:
    """What a lab for ``config`` would judge: its config, the niche's champion and the source datasets.
    Datasets derived from a model (teacher caches) are left out: the lab makes them from the others."""
    from breedlab.lab.steps import champion_of

    datasets = sorted(a.id for a in registry.find(kind="dataset") if not a.manifest.parents)
    payload = {"config": asdict(config), "champion": champion_of(registry, config.niche).id, "datasets": datasets}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _judged_no_op(registry: Registry, key: str):
    """The ``spawn-no-op`` event of an earlier lab with this key, if any."""
    events, _ = registry.log.read()
    return next((e for e in reversed(events) if e.type == "spawn-no-op" and e.data.get("lab_key") == key), None)


def run_spawn(registry: Registry, home, request, lab_config, governance: GovernanceConfig, parent_id: str,
              *, approver: str, console: Console, display=None) -> SpawnResult:
    """Breed and evaluate a child for ``request.domain``; the approver promotes the useful specialist to shadow."""
    from breedlab.lab.run import run_lab

    domain = request.domain
    problem = budget_problem(registry, governance, domain)
    if problem:
        registry.record("spawn-deferred", parent_id, actor=governance.breeder, reason=problem,
                        data={"domain": domain, "sigma": request.sigma})
        return SpawnResult(domain, None, None, {}, problem)
    config = replace(lab_config, niche=domain)
    key = lab_key(registry, config)
    judged = _judged_no_op(registry, key)
    if judged is not None:
        reason = (f"the lab already judged this niche with the same champion, recipe and data (release "
                  f"{judged.data['release'][:12]}: no-op); it would judge the same again")
        registry.record("spawn-deferred", parent_id, actor=governance.breeder, reason=reason,
                        data={"domain": domain, "sigma": request.sigma, "lab_key": key})
        return SpawnResult(domain, None, None, {}, reason)
    result = run_lab(registry, home, config, console, display)
    selection = result.selection
    if not selection.useful_specialist:
        reason = "no candidate earned promotion: " + "; ".join(selection.reasons)
        registry.record("spawn-no-op", parent_id, actor=governance.breeder, reason=reason,
                        data={"domain": domain, "release": result.release.id, "lab_key": key})
        return SpawnResult(domain, None, result.release, result.fitness, reason)
    child = registry.get(selection.useful_specialist)
    packet = result.evidence[child.id]
    reason = (f"approver: lab release {result.release.id[:12]} names {child.manifest.name} {child.id[:12]} the "
              f"useful specialist for {domain} (evidence {packet[:12]}); shadow it on live traffic")
    promote(registry, governance, child.id, "shadow", niche=domain, approver=approver, reason=reason)
    return SpawnResult(domain, registry.get(child.id), result.release, result.fitness, reason)


def reevaluate(registry: Registry, home, child_id: str, parent_id: str, lab_config, *, console: Console,
               evaluation=None):
    """A flagged child measured again on its niche's frozen suites against the parent: (decision, packet id).

    The same steps as the lab's evaluation (``lab/steps.py``): the suites are rebuilt by the
    same recipe, so they are the same artifacts, not new ones a child could have been tuned to.
    """
    from breedlab.evaluation.decision import decide
    from breedlab.evaluation.gates import evaluate_gates, load_evaluation_config
    from breedlab.evaluation.packets import write_evidence_packet
    from breedlab.lab.steps import build_suites, measure_all

    parent, child = registry.get(parent_id), registry.get(child_id)
    niche = lab_config.niche
    suites = build_suites(registry, parent, lab_config)
    fitness = measure_all(registry, parent, [child], suites, console)
    evaluation = evaluation or load_evaluation_config()
    gates = evaluate_gates(fitness[child.id], evaluation)
    decision = decide(fitness[parent.id], fitness[child.id], evaluation)
    packet = write_evidence_packet(registry, fitness[parent.id], fitness[child.id], gates, decision, niche=niche)
    return decision, packet.id
