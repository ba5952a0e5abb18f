"""``breedlab population``: breed every candidate recipe for every niche at once, judge them, release.

    suites     <- the head builds each niche's frozen suites (the evaluator's)
    breed      <- one task per niche x candidate, each in its own home, as the breeder
    register   <- the head registers every shipment (ids checked), the one writer
    measure    <- one task per model (champions first: their general PPL is the candidates' baseline),
                  as the evaluator, engine checks included
    judge      <- the head: gates, paired tests, evidence packets, one release packet per niche

A niche's release packet covers the whole population bred for it (its rollback target is the niche's
champion, so a packet per niche is what an approver can act on).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console

from breedlab.cluster.recipes import CandidateRecipe
from breedlab.cluster.runner import ClusterOptions, new_board, ray_session, run_tasks
from breedlab.cluster.tasks import BreedSpec, MeasureSpec, breed_seed, breed_task, measure_task, model_seed
from breedlab.cluster.transfer import records_of, register_records, replay_events
from breedlab.evaluation.fitness import FitnessVector
from breedlab.home import Home
from breedlab.lab.run import LabConfig, LabResult, acting_as
from breedlab.registry import Artifact, Registry
from breedlab.registry.canonical import sha256_json
from breedlab.typed_config import HOME_CONFIGS

WORK_FOLDER = "ray-work"


@dataclass
class PopulationResult:
    labs: dict[str, LabResult] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    """Task label -> why it failed (its candidate is left out; the others are judged)."""
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Task label -> attempt, seconds, tokens of each finished task."""


def run_population(registry: Registry, home: Home, niches: list[str], candidates: Callable[[str], list],
                   config_for: Callable[[str], LabConfig], options: ClusterOptions,
                   console: Console | None = None) -> PopulationResult:
    from breedlab.governance.config import load_governance
    from breedlab.lab.steps import build_suites, champion_of

    console, governance = console or Console(), load_governance(home.root)
    result = PopulationResult()
    champions = {niche: champion_of(registry, niche) for niche in niches}
    specs = breed_specs(registry, home, niches, champions, candidates, governance.breeder, options)
    with acting_as(registry, governance.evaluator):
        suites = {niche: build_suites(registry, champions[niche], config_for(niche)) for niche in niches}
    with ray_session(options):
        board = new_board(options)
        outcomes = run_tasks(breed_task, specs, options, board, title="population: breeding", console=console,
                             home_root=home.root)
        bred = _register_all(registry, specs, outcomes, governance.breeder, result)
        fitness = measure_population(registry, home, champions, suites, bred, config_for, options, board,
                                     governance.evaluator, console, result)
    with acting_as(registry, governance.evaluator):
        for niche in niches:
            measured = [c for c in bred.get(niche, []) if c.id in fitness[niche]]
            result.labs[niche] = judge_niche(registry, home, niche, champions[niche], suites[niche], measured,
                                             fitness[niche], config_for(niche), console)
    return result


def breed_specs(registry: Registry, home: Home, niches: list[str], champions: dict[str, Artifact], candidates,
                actor: str, options: ClusterOptions) -> list[BreedSpec]:
    """One spec per niche and candidate; two that would breed the same child are refused before any runs."""
    specs = [breed_spec(registry, home, niche, champions[niche], candidate, actor, options)
             for niche in niches for candidate in candidates(niche)]
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.key in seen:
            raise ValueError(f"{spec.label} and {seen[spec.key]} are the same recipe on the same model and data: "
                             "list it once")
        seen[spec.key] = spec.label
    return specs


def breed_spec(registry: Registry, home: Home, niche: str, champion: Artifact, candidate: CandidateRecipe,
               actor: str, options: ClusterOptions, checkpoint_every: int = 25) -> BreedSpec:
    from breedlab.registry.lineage import full_precision

    source = full_precision(registry, champion)  # nothing trains quantized weights
    recipe = candidate.recipe_for(niche)
    seed = records_of(breed_seed(registry, source, niche))
    # the seed is in the key: a task home left by a run on older data is never resumed by this one
    key = sha256_json({"operator": candidate.operator, "recipe": recipe.to_dict(), "source": source.id,
                       "seed": [record["id"] for record in seed]})
    return BreedSpec(key=key, label=f"{niche}/{candidate.name}", records=seed,
                     **task_fields(registry, home, actor, options), operator=candidate.operator,
                     recipe=recipe.to_dict(), source=source.id, checkpoint_every=checkpoint_every)


def task_fields(registry: Registry, home: Home, actor: str, options: ClusterOptions) -> dict[str, Any]:
    """What every task of this head shares: where the objects and task homes are, the head's config
    overrides, who it acts as and its threads."""
    folder = home.root / HOME_CONFIGS
    configs = {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}
    return {"objects_dir": str(registry.objects.root), "work_root": str(home.root / WORK_FOLDER),
            "configs": configs, "actor": actor, "threads": options.cpus_per_task}


def import_shipment(registry: Registry, shipment: dict[str, Any], actor: str) -> None:
    """Register a task's records (ids checked) and replay its events, then drop the task's home."""
    register_records(registry, shipment["records"], shipment["objects_dir"], actor=actor)
    replay_events(registry, shipment["events"], actor=actor)
    shutil.rmtree(shipment["home"], ignore_errors=True)


def _import_each(registry: Registry, specs: list, outcomes: dict, actor: str, result: PopulationResult) -> dict:
    """Every finished task's shipment registered; a failed task or a refused shipment is reported in
    ``result.failed`` and the others still land (its home stays, for a rerun to resume)."""
    landed = {}
    for spec in specs:
        outcome = outcomes[spec.key]
        try:
            if isinstance(outcome, Exception):
                raise outcome
            import_shipment(registry, outcome, actor)
        except Exception as error:
            result.failed[spec.label] = f"{type(error).__name__}: {error}"
            continue
        landed[spec.key] = outcome
    return landed


def _register_all(registry: Registry, specs: list[BreedSpec], outcomes: dict, actor: str,
                  result: PopulationResult) -> dict[str, list[Artifact]]:
    bred: dict[str, list[Artifact]] = {}
    landed = _import_each(registry, specs, outcomes, actor, result)
    for spec in specs:
        if spec.key in landed:
            outcome = landed[spec.key]
            result.tasks[spec.label] = {k: outcome[k] for k in ("attempt", "seconds", "tokens", "child")}
            bred.setdefault(spec.label.split("/")[0], []).append(registry.get(outcome["child"]))
    return bred


def measure_population(registry: Registry, home: Home, champions: dict[str, Artifact], suites: dict, bred: dict,
                       config_for, options: ClusterOptions, board, evaluator: str, console: Console,
                       result: PopulationResult) -> dict[str, dict[str, FitnessVector]]:
    """Every champion and every candidate measured as tasks, all in one wave (so a candidate's latency is
    timed under the same load as its champion's), each on its niche's suites: niche -> id -> vector."""
    from breedlab.evaluation.measure import set_general_baseline
    from breedlab.lab.steps import canary_of

    models = [(niche, model) for niche, champion in champions.items()
              for model in (champion, *bred.get(niche, []))]
    canaries = {niche: canary_of(registry, champion) for niche, champion in champions.items()}
    specs = [measure_spec(registry, home, niche, model, suites[niche], evaluator, options, canaries[niche],
                          config_for(niche).engine) for niche, model in models]
    outcomes = run_tasks(measure_task, specs, options, board, title="population: measuring", console=console,
                         home_root=home.root)
    landed = _import_each(registry, specs, outcomes, evaluator, result)
    fitness: dict[str, dict[str, FitnessVector]] = {niche: {} for niche in champions}
    for spec, (niche, model) in zip(specs, models):
        if spec.key in landed:
            fitness[niche][model.id] = FitnessVector.from_dict(landed[spec.key]["fitness"])
    for niche, champion in champions.items():
        if champion.id not in fitness[niche]:
            raise RuntimeError(f"the champion of {niche} could not be measured: {result.failed}")
        baseline = fitness[niche][champion.id].general_ppl
        for vector in fitness[niche].values():
            set_general_baseline(vector, baseline)  # the champion is its own baseline: 0 and 1.0
    return fitness


def measure_spec(registry: Registry, home: Home, niche: str, model: Artifact, suites: dict, evaluator: str,
                 options: ClusterOptions, canary, engine: str) -> MeasureSpec:
    key = sha256_json({"measure": model.id, "suites": suites, "engine": engine})
    return MeasureSpec(key=key, label=f"{niche}/measure {model.manifest.name}",
                       records=model_seed(registry, [model.id], suites),
                       **task_fields(registry, home, evaluator, options), model=model.id, suites=suites,
                       canary=canary, engine=engine)


def judge_niche(registry: Registry, home: Home, niche: str, champion: Artifact, suites: dict,
                candidates: list[Artifact], fitness: dict, config: LabConfig, console: Console) -> LabResult:
    """The lab's verdict on one niche's share of the population: packets and one release packet."""
    from breedlab.evaluation.gates import load_evaluation_config
    from breedlab.governance.config import load_governance
    from breedlab.lab.verdict import judge, select_and_release

    governance, evaluation = load_governance(home.root), load_evaluation_config()
    lab = LabResult(champion, suites, candidates, {a.id: fitness[a.id] for a in (champion, *candidates)})
    for artifact in (champion, *candidates):
        lab.fitness[artifact.id].operator = artifact.manifest.operator
    if not candidates:
        console.print(f"{niche}: no candidate was bred and measured; nothing to judge", highlight=False)
        return lab
    budgets = judge(registry, lab, config, evaluation, governance, console)
    select_and_release(registry, lab, config, evaluation, budgets, console, governance.evaluator)
    return lab
