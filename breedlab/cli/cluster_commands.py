"""``breedlab population`` and ``breedlab search``: many breeds at once, in this process or on Ray."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from breedlab.cli.common import HomeOption, KeysOption, console, fail, open_registry
from breedlab.home import Home

RayOption = Annotated[Optional[str], typer.Option(
    "--ray", help="run as Ray tasks: local (a new local cluster), auto (the running cluster, else a local "
                  "one) or a cluster address; without it, in this process")]
CpusOption = Annotated[int, typer.Option(help="CPUs each task declares, and its torch threads. Children are "
                                              "bit-identical at equal threads (a float sum's order follows them)")]
DEFAULT_CPUS = min(2, os.cpu_count() or 1)
LocalCpusOption = Annotated[Optional[int], typer.Option(help="CPUs of a local cluster this run starts")]


def population(
    niche: Annotated[list[str], typer.Option(help="a niche to breed for (repeat for several)")],
    recipes: Annotated[Optional[Path], typer.Option(help="YAML file of candidate recipes (default: the lab's "
                                                         "candidates, from the home's lab.yaml)")] = None,
    ray: RayOption = None,
    cpus_per_task: CpusOption = DEFAULT_CPUS,
    local_cpus: LocalCpusOption = None,
    max_retries: Annotated[int, typer.Option(help="times Ray reruns a task whose worker died")] = 2,
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Breed every candidate recipe for every niche (Ray tasks with --ray), judge them, release.

    Workers breed in homes of their own; only this process registers, and checks every id. Each niche
    ends in one release packet; promotion stays with an approver."""
    from breedlab.cluster.population import run_population
    from breedlab.cluster.recipes import lab_candidates, load_recipes
    from breedlab.cluster.runner import ClusterOptions
    from breedlab.lab.run import home_lab_config
    from breedlab.lab.setup import lab_identities

    resolved = Home.resolve(home)
    registry = open_registry(home)
    lab_identities(registry, resolved, keys)
    try:
        listed = load_recipes(recipes) if recipes else None
    except (OSError, ValueError) as error:
        fail(str(error))

    def config_for(name: str):
        return home_lab_config(resolved.root, name)

    def candidates(name: str):
        return listed if listed is not None else lab_candidates(registry, config_for, name)

    options = ClusterOptions(ray=ray, cpus_per_task=cpus_per_task, local_cpus=local_cpus, max_retries=max_retries)
    result = run_population(registry, resolved, list(niche), candidates, config_for, options, console)
    for label, task in result.tasks.items():
        console.print(f"{label}: child {task['child'][:12]}, attempt {task['attempt']}, {task['seconds']:.0f} s, "
                      f"{task['tokens']:,} tokens", highlight=False)
    if result.failed:
        fail("; ".join(f"{label} failed: {why}" for label, why in result.failed.items()))


def search(
    niche: Annotated[str, typer.Option(help="the niche whose recipe is searched")],
    space: Annotated[Path, typer.Option(help="YAML search space (breedlab/cluster/search_space.py)")],
    ray: RayOption = "auto",
    cpus_per_task: CpusOption = DEFAULT_CPUS,
    local_cpus: LocalCpusOption = None,
    max_concurrent: Annotated[Optional[int], typer.Option(help="at most this many trials at once")] = None,
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Search a niche's recipe with Ray Tune (ASHA on the validation curve), then judge the winner once on
    the frozen test suites: a search artifact, the winner (its lineage names the search), its packets."""
    from breedlab.cluster.runner import ClusterOptions
    from breedlab.cluster.search import run_search
    from breedlab.cluster.search_space import load_space
    from breedlab.lab.run import home_lab_config
    from breedlab.lab.setup import lab_identities
    from breedlab.registry import RegistryError

    resolved = Home.resolve(home)
    registry = open_registry(home)
    lab_identities(registry, resolved, keys)
    try:
        searched = load_space(space)
    except (OSError, ValueError) as error:
        fail(str(error))
    options = ClusterOptions(ray=ray, cpus_per_task=cpus_per_task, local_cpus=local_cpus,
                             max_concurrent=max_concurrent)
    try:
        result = run_search(registry, resolved, niche, searched, lambda name: home_lab_config(resolved.root, name),
                            options, console)
    except RegistryError as error:
        fail(str(error))
    metrics = result.search.manifest.metrics
    console.print(f"search {result.search.id[:12]}: {metrics['trials']} trials, {metrics['stopped_early']} stopped "
                  f"early, winner trial {metrics['winner_trial']} (validation NLL {metrics['winner_val_nll']:.4f}): "
                  f"child {result.winner.id[:12]}", highlight=False)
