"""``breedlab niche add/list/show``: niches from a user's own files and examples."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from breedlab.cli.common import HomeOption, console, fail, open_registry
from breedlab.home import Home

niche_app = typer.Typer(no_args_is_help=True, help="Niches from your own files and examples.")


@niche_app.command("add")
def niche_add(
    name: Annotated[str, typer.Argument(help="the niche's name (lower-case, e.g. my-repo)")],
    docs: Annotated[Optional[list[str]], typer.Option(help="folder, glob or file of text (repeatable)")] = None,
    examples: Annotated[Optional[Path], typer.Option(help="JSONL of {input, output} or {messages}, "
                                                     "optionally with sources")] = None,
    task: Annotated[Optional[str], typer.Option(help="how examples are judged: classify | extract | "
                                                "summarize | rewrite | grounded")] = None,
    home: HomeOption = None,
) -> None:
    """Register the niche's datasets with the corpora's own cleaning, dedup, seeded split and hashes."""
    from breedlab.data.examples import ExamplesError
    from breedlab.data.niche import NicheError, add_niche

    try:
        report = add_niche(Home.resolve(home), open_registry(home), name, docs=docs, examples=examples, task=task)
    except (NicheError, ExamplesError) as error:
        fail(f"{error}; nothing was registered")
    for dataset, artifact_id in report.datasets.items():
        console.print(f"{dataset} [cyan]{artifact_id[:12]}[/]", highlight=False)
    if report.examples:
        console.print("examples: " + ", ".join(f"{s} {n}" for s, n in report.examples.items())
                      + (f" ({report.repeats} exact repeats dropped)" if report.repeats else ""), highlight=False)
    for note in report.notes:
        console.print(f"[yellow]{note}[/]", highlight=False)


@niche_app.command("ship")
def niche_ship(
    name: Annotated[str, typer.Argument(help="man-summary | docstring | licence-clause | hpo-grounded")],
    limit: Annotated[int, typer.Option(help="examples at most (a seeded sample)")] = 600,
    seed: Annotated[int, typer.Option()] = 0,
    home: HomeOption = None,
) -> None:
    """Register one of the four example niches built from text already on this machine."""
    from breedlab.data.shipped_niches import ship_niche

    try:
        report = ship_niche(Home.resolve(home), open_registry(home), name, limit=limit, seed=seed)
    except ValueError as error:
        fail(str(error))
    console.print(f"{name} ({report.task}): " + ", ".join(f"{s} {n}" for s, n in report.examples.items())
                  + " examples", highlight=False)
    for dataset, artifact_id in report.datasets.items():
        console.print(f"  {dataset} [cyan]{artifact_id[:12]}[/]", highlight=False)


@niche_app.command("list")
def niche_list(home: HomeOption = None) -> None:
    """Every niche added from local files or examples."""
    from breedlab.data.niche import registered_niches

    table = Table("niche", "task", "datasets")
    for name, niche in registered_niches(open_registry(home)).items():
        table.add_row(name, niche["task"] or "lm", ", ".join(sorted(n.split("/", 1)[1] for n in niche["datasets"])))
    console.print(table)


@niche_app.command("show")
def niche_show(name: str, home: HomeOption = None) -> None:
    """A niche's datasets: ids, sizes and where their text came from."""
    from breedlab.data.niche import registered_niches

    niche = registered_niches(open_registry(home)).get(name)
    if niche is None:
        fail(f"no niche {name!r}; breedlab niche list shows the registered ones")
    console.print(f"[bold]{name}[/]  task: {niche['task'] or 'lm (documents only)'}")
    for dataset, artifact in sorted(niche["datasets"].items()):
        metrics = artifact.manifest.metrics
        size = f"{metrics['examples']} examples" if "examples" in metrics else f"{metrics.get('docs', 0)} documents"
        origin = artifact.manifest.recipe.get("examples_sha256") or artifact.manifest.recipe.get(
            "source_versions", {}).get("local-files", {}).get("files", "")
        console.print(f"  {dataset:<28} {artifact.id[:12]}  {size:<16} from {origin[:12]}", highlight=False)
