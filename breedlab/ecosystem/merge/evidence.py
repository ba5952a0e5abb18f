"""What a merge consideration measures: frozen suites, fitness per model and domain, cross-evaluation, evidence.

The helpers behind steps 1 and 3 of ``consider_merge`` (:mod:`breedlab.ecosystem.merge.review`), and the
``Consideration`` they share: one consideration's inputs and what it has measured so far. Cross-evaluation
(step 1): ``score(a on B) >= min_cross_ratio * score(b on B)`` and the same for b on A, where score is
cloze ``utility`` or ``inverse_ppl`` = 1 / domain perplexity. Each model is measured once per domain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from breedlab.ecosystem.merge.config import MergeConfig
from breedlab.evaluation.decision import Decision
from breedlab.registry import Artifact, Event, Registry


@dataclass
class Consideration:
    """One consideration's inputs and what it has measured so far."""

    registry: Registry
    home: Any
    config: MergeConfig
    governance: Any
    approver: str
    breeder: str
    evaluation: Any
    console: Any
    pair: tuple[Artifact, Artifact]
    niche: dict[str, str]
    domain: dict[str, str]
    base: str | None
    statistics: dict = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    suites: dict = field(default_factory=dict)
    fitness: dict = field(default_factory=dict)
    measure_options: dict = field(default_factory=dict)


def say(run: Consideration, text: str) -> None:
    if run.console is not None:
        run.console.print(f"  [merge] {text}")


def prepare(run: Consideration, suites: dict | None, *, isolate: bool, latency) -> None:
    """The frozen suites per domain, the planted canary, and the base's general perplexity."""
    from transformers import AutoTokenizer

    from breedlab.evaluation.measure import measure_candidate
    from breedlab.evaluation.suites import build_suite

    if suites is None:
        tokenizer = AutoTokenizer.from_pretrained(run.pair[0].path)
        sizes = {"lm": run.config.lm_cases, "cloze": run.config.cloze_cases, "retention": run.config.retention_cases}
        suites = {domain: {kind: build_suite(run.registry, kind, "general" if kind == "retention" else domain,
                                             tokenizer=tokenizer, cases=cases, seed=run.config.seed,
                                             tokens=run.config.passage_tokens).id for kind, cases in sizes.items()}
                  for domain in run.domain.values()}
    run.suites = {domain: dict(suites[domain]) for domain in run.domain.values()}
    run.measure_options = {"isolate": isolate, "latency": latency, "canary": _planted_canary(run.registry)}
    retention = next(iter(run.suites.values())).get("retention")
    if run.base is not None and retention:
        parent = measure_candidate(run.registry, run.base, {"retention": retention}, **run.measure_options)
        run.measure_options["parent_general_ppl"] = parent.general_ppl


def _planted_canary(registry: Registry) -> dict[str, str] | None:
    """The privacy canary planted in the training splits (their recipes name it), as the lab measures it."""
    for data in registry.find(kind="dataset"):
        canary = data.manifest.recipe.get("canary") if data.manifest.name.endswith("/train") else None
        if canary and canary.get("secret"):
            return {"prefix": canary["prefix"], "secret": canary["secret"]}
    return None


def measure(run: Consideration, model_id: str, domain: str):
    """The model's FitnessVector on the domain's suites, measured once per consideration."""
    from breedlab.evaluation.measure import measure_candidate

    if (model_id, domain) not in run.fitness:
        say(run, f"measuring {model_id[:12]} on {domain}")
        fitness = measure_candidate(run.registry, model_id, run.suites[domain], **run.measure_options)
        fitness.operator = run.registry.get(model_id).manifest.operator
        run.fitness[(model_id, domain)] = fitness
    return run.fitness[(model_id, domain)]


def measure_merged(run: Consideration, merged: Artifact, own: dict) -> tuple[dict, dict, dict, dict[str, int]]:
    """Step 3's measurements as ``merge_rule`` takes them: (specialist, merged, gates, costs).

    ``own[model][domain]``: each specialist's FitnessVector; the merged model is measured here.
    """
    from breedlab.evaluation.gates import evaluate_gates

    a, b = run.pair
    specialist = {run.domain[m.id]: own[m.id][run.domain[m.id]] for m in run.pair}
    merged_fit = {d: measure(run, merged.id, d) for d in run.suites}
    gates = {d: evaluate_gates(merged_fit[d], run.evaluation) for d in run.suites}
    costs = {"merged": merged_fit[run.domain[a.id]].weight_bytes,
             "a": own[a.id][run.domain[a.id]].weight_bytes, "b": own[b.id][run.domain[b.id]].weight_bytes}
    return specialist, merged_fit, gates, costs


def measure_ensembles(run: Consideration) -> dict:
    """Domain -> the pair's logit ensemble measured on that domain's lm and cloze suites (in this process:
    the ensemble is no registered model a guarded subprocess could load by id)."""
    from breedlab.evaluation.ensemble import measure_ensemble

    say(run, "measuring the ensemble of both specialists (the behavioural baseline)")
    return {domain: measure_ensemble(run.registry, [m.id for m in run.pair], suites)
            for domain, suites in run.suites.items()}


def cross_evaluation(own: dict[str, dict[str, Any]], domain_of: dict[str, str],
                     config: MergeConfig) -> tuple[bool, dict]:
    """Step 1's cross-evaluation; ``own[model][domain]`` is that model's FitnessVector on that domain."""
    (a, b), pairs = list(domain_of), {}
    for model, other in ((a, b), (b, a)):
        domain = domain_of[other]
        cross, reference = _score(own[model][domain], config), _score(own[other][domain], config)
        ratio = cross / reference if cross is not None and reference else None
        passed = cross is not None and reference is not None and cross >= config.min_cross_ratio * reference
        pairs[f"{model[:12]} on {domain}"] = {"score": cross, "specialist_score": reference, "ratio": ratio,
                                              "passed": passed}
    converged = all(p["passed"] for p in pairs.values())
    return converged, {"metric": config.cross_metric, "min_ratio": config.min_cross_ratio, "pairs": pairs}


def cross_shortfall(cross: dict, config: MergeConfig) -> str:
    """Step 1's skip reason when cross-evaluation fails: every pair's score against the specialist's own."""
    return "cross-evaluation below the ratio: " + "; ".join(
        f"{k}: {p['score']} vs {p['specialist_score']} (need ratio {config.min_cross_ratio})"
        for k, p in cross["pairs"].items())


def _score(fitness, config: MergeConfig) -> float | None:
    if config.cross_metric == "utility":
        return fitness.utility
    return None if not fitness.domain_ppl else 1.0 / fitness.domain_ppl


def write_evidence(run: Consideration, merged: Artifact, specialist: dict, merged_fit: dict, gates: dict,
                    decision: Decision) -> dict[str, str]:
    """One evidence packet per niche: the merged model against that niche's specialist, the merge decision."""
    from breedlab.evaluation.packets import write_evidence_packet

    packets = {}
    for model in run.pair:
        domain, niche = run.domain[model.id], run.niche[model.id]
        packet = write_evidence_packet(run.registry, specialist[domain], merged_fit[domain], gates[domain],
                                       decision, niche=niche, parents=[merged.id, *(m.id for m in run.pair)])
        packets[niche] = packet.id
    return packets
