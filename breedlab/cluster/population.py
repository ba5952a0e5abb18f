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
    with ray_session(options):
        board = new_board(options)
        champions = {niche: champion_of(registry, niche) for niche in niches}
        with acting_as(registry, governance.evaluator):
            suites = {niche: build_suites(registry, champions[niche], config_for(niche)) for niche in niches}
        specs = [breed_spec(registry, home, niche, champions[niche], candidate, governance.breeder, options)
                 for niche in niches for candidate in candidates(niche)]
        outcomes = run_tasks(breed_task, specs, options, board, title="population: breeding", console=console,
                             home_root=home.root)
        bred = _register_all(registry, specs, outcomes, governance.breeder, result)
        fitness = measure_population(registry, home, champions, suites, bred, config_for, options, board,
                                     governance.evaluator, console, result)
    with acting_as(registry, governance.evaluator):
        for niche in niches:
            result.labs[niche] = judge_niche(registry, home, niche, champions[niche], suites[niche],
                                             bred.get(niche, []), fitness, config_for(niche), console)
    return result


def breed_spec(registry: Registry, home: Home, niche: str, champion: Artifact, candidate: CandidateRecipe,
               actor: str, options: ClusterOptions, checkpoint_every: int = 25) -> BreedSpec:
    from breedlab.registry.lineage import full_precision

    source = full_precision(registry, champion)  # nothing trains quantized weights
    recipe = candidate.recipe_for(niche)
    key = sha256_json({"operator": candidate.operator, "recipe": recipe.to_dict(), "source": source.id})
    return BreedSpec(key=key, label=f"{niche}/{candidate.name}", records=records_of(breed_seed(registry, source, niche)),
                     objects_dir=str(registry.objects.root), work_root=str(home.root / WORK_FOLDER),
                     configs=head_configs(home), actor=actor, threads=options.cpus_per_task,
                     operator=candidate.operator, recipe=recipe.to_dict(), source=source.id,
                     checkpoint_every=checkpoint_every)


def head_configs(home: Home) -> dict[str, str]:
    folder = home.root / "configs"
    return {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def import_shipment(registry: Registry, shipment: dict[str, Any], actor: str) -> None:
    """Register a task's records (ids checked) and replay its events, then drop the task's home."""
    register_records(registry, shipment["records"], shipment["objects_dir"], actor=actor)
    replay_events(registry, shipment["events"], actor=actor)
    shutil.rmtree(shipment["home"], ignore_errors=True)


def _register_all(registry: Registry, specs: list[BreedSpec], outcomes: dict, actor: str,
                  result: PopulationResult) -> dict[str, list[Artifact]]:
    bred: dict[str, list[Artifact]] = {}
    for spec in specs:
        outcome = outcomes[spec.key]
        if isinstance(outcome, Exception):
            result.failed[spec.label] = f"{type(outcome).__name__}: {outcome}"
            continue
        import_shipment(registry, outcome, actor)
        result.tasks[spec.label] = {k: outcome[k] for k in ("attempt", "seconds", "tokens", "child")}
        bred.setdefault(spec.label.split("/")[0], []).append(registry.get(outcome["child"]))
    return bred


def measure_population(registry: Registry, home: Home, champions: dict[str, Artifact], suites: dict, bred: dict,
                       config_for, options: ClusterOptions, board, evaluator: str, console: Console,
                       result: PopulationResult) -> dict[str, FitnessVector]:
    """Every champion, then every candidate, measured as tasks on its niche's suites."""
    from breedlab.lab.steps import _canary

    def specs_for(models: list[tuple[str, Artifact]], baseline: dict[str, float | None]) -> list[MeasureSpec]:
        return [measure_spec(registry, home, niche, model, suites[niche], evaluator, options,
                             baseline.get(niche), _canary(registry, champions[niche]), config_for(niche).engine)
                for niche, model in models]

    fitness: dict[str, FitnessVector] = {}
    waves = [[(niche, champion) for niche, champion in champions.items()],
             [(niche, child) for niche, children in bred.items() for child in children]]
    for number, models in enumerate(waves):
        baseline = {niche: fitness[c.id].general_ppl for niche, c in champions.items()} if number else {}
        specs = specs_for(models, baseline)
        outcomes = run_tasks(measure_task, specs, options, board, title="population: measuring", console=console,
                             home_root=home.root)
        for spec in specs:
            outcome = outcomes[spec.key]
            if isinstance(outcome, Exception):
                raise RuntimeError(f"measuring {spec.label} failed: {outcome}") from outcome
            import_shipment(registry, outcome, evaluator)
            fitness[spec.model] = FitnessVector.from_dict(outcome["fitness"])
        if number == 0:
            for champion in champions.values():  # the champion is its own baseline
                fitness[champion.id].general_regression, fitness[champion.id].general_ppl_ratio = 0.0, 1.0
    return fitness


def measure_spec(registry: Registry, home: Home, niche: str, model: Artifact, suites: dict, evaluator: str,
                 options: ClusterOptions, parent_ppl, canary, engine: str) -> MeasureSpec:
    key = sha256_json({"measure": model.id, "suites": suites, "engine": engine, "baseline": parent_ppl})
    return MeasureSpec(key=key, label=f"{niche}/measure {model.manifest.name}", records=model_seed(registry, [model.id], suites),
                       objects_dir=str(registry.objects.root), work_root=str(home.root / WORK_FOLDER),
                       configs=head_configs(home), actor=evaluator, threads=options.cpus_per_task,
                       model=model.id, suites=suites, parent_general_ppl=parent_ppl, canary=canary, engine=engine)


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
        console.print(f"{niche}: no candidate was bred; nothing to judge", highlight=False)
        return lab
    budgets = judge(registry, lab, config, evaluation, governance, console)
    select_and_release(registry, lab, config, evaluation, budgets, console, governance.evaluator)
    return lab
