"""Commands that breed and govern: ``breed``, ``operate``, ``lab``, ``promote``, ``router-variant``, ``rollback``.

Each is a plain function; ``app.py`` registers them on the top-level command.
"""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Annotated, Optional

import typer

from breedlab.cli.common import (
    HomeOption,
    IdentityOption,
    KeysOption,
    acting_identity,
    console,
    default_parent,
    fail,
    open_registry,
    open_registry_as,
)
from breedlab.home import Home


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


def operate(
    name: Annotated[str, typer.Argument(help="a registered operator (breedlab operate --list names them)")] = "",
    input_id: Annotated[Optional[str], typer.Option("--input", help="the input model's id [default: the champion "
                                                                     "parent]")] = None,
    recipe_file: Annotated[Optional[Path], typer.Option("--recipe", help="YAML mapping of recipe fields")] = None,
    field: Annotated[Optional[list[str]], typer.Option("--set", help="FIELD=VALUE (a YAML value), repeatable; "
                                                       "over the recipe file")] = None,
    list_operators: Annotated[bool, typer.Option("--list", help="list the operators and their recipe fields")] = False,
    threads: Annotated[Optional[int], typer.Option(help="torch threads")] = None,
    home: HomeOption = None,
) -> None:
    """Run any registered operator on a model: its recipe from a YAML file and --set, checked by its class.

    For example, prune then heal separately:
    breedlab operate prune --set domain=code --set ratio=0.5, then
    breedlab operate adapter-finetune --input <the pruned child's id> --set domain=code
    """
    import yaml

    from breedlab.cmg.recipe import RunOptions
    from breedlab.governance.config import load_governance
    from breedlab.operators.table import build_recipe, operator_entry, operator_names

    if list_operators or not name:
        for known in operator_names():
            fields = ", ".join(f.name for f in dataclass_fields(operator_entry(known).recipe))
            console.print(f"[bold]{known}[/] ({operator_entry(known).recipe.__name__}): {fields}", highlight=False)
        return
    values = yaml.safe_load(recipe_file.read_text()) if recipe_file else {}
    for item in field or []:
        key, sep, value = item.partition("=")
        if not sep:
            fail(f"--set takes FIELD=VALUE, got {item!r}")
        values[key.strip()] = yaml.safe_load(value)
    try:
        recipe = build_recipe(name, values or {})
    except (KeyError, ValueError) as error:
        fail(str(error).strip("'\""))
    registry = open_registry(home)
    options = RunOptions(threads=threads, actor=load_governance(Home.resolve(home).root).breeder)
    outcome = operator_entry(name).function(registry, Home.resolve(home), input_id or default_parent(registry),
                                            recipe, options)
    if outcome.child is None:
        console.print(f"[yellow]interrupted[/] at step {outcome.result.steps_done}; run the same command to resume")
        raise typer.Exit(2)
    verb = "found (already made)" if outcome.reused else "registered"
    console.print(f"{verb} {outcome.child.manifest.kind} [bold]{outcome.child.manifest.name}[/] "
                  f"[cyan]{outcome.child.id}[/]")


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
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Run the local breeding lab: champion, frozen suites, candidates, fitness, packets.

    Imports the SmolLM2 parent and builds the corpora first if they are missing.
    The lab breeds and judges; promotion stays with an approver (breedlab promote).
    """
    from breedlab.lab.run import LabConfig, run_lab
    from breedlab.lab.setup import ensure_parent_and_data, lab_identities

    given = {"distill_tokens": distill_tokens, "finetune_tokens": finetune_tokens,
             "candidates": candidates and tuple(name.strip() for name in candidates.split(",") if name.strip())}
    try:
        config = LabConfig(niche=niche, ratio=ratio, cmg_preset=cmg_preset, seed=seed,
                           **{name: value for name, value in given.items() if value is not None})
    except ValueError as error:  # before the parent and corpora are fetched: a bad flag fails fast
        fail(str(error))
    resolved = Home.resolve(home)
    registry = open_registry(home)
    crowner = lab_identities(registry, resolved, keys)  # signed: each act by its own identity's key
    ensure_parent_and_data(console, resolved, registry, actor=crowner, domains=[niche, "general"])
    run_lab(registry, resolved, config, console)


def promote(
    artifact_id: str,
    to: Annotated[str, typer.Option("--to", help="shadow | canary | champion")],
    niche: Annotated[str, typer.Option(help="the niche (domain) the candidate would serve")],
    reason: Annotated[str, typer.Option(help="why, for the event log")] = "evidence packet passed",
    identity: IdentityOption = None,
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Promote a candidate: needs a passing evidence packet and an approver who did not breed it (in a
    signed home, the approver's key file)."""
    from breedlab.governance.config import load_governance
    from breedlab.governance.promotion import promote as promote_candidate

    resolved, approver = Home.resolve(home), acting_identity(identity)
    events = promote_candidate(open_registry_as(home, approver, keys), load_governance(resolved.root), artifact_id,
                               to, niche=niche, approver=approver, reason=reason)
    for event in events:
        console.print(f"{event.type} {event.artifact[:12]}: {event.data.get('from')} -> {event.data.get('to')} "
                      f"({event.reason})")


def router_variant_command(
    variant: Annotated[str, typer.Argument(help="refit | threshold | policy")],
    policy: Annotated[Optional[str], typer.Option(help="the policy kind, for 'policy' (e.g. hybrid, linear)")] = None,
    target: Annotated[Optional[float], typer.Option(help="the precision target, for 'threshold'")] = None,
    home: HomeOption = None,
) -> None:
    """Derive a candidate router policy from the champion and judge it on the frozen routing suite.

    'refit' adds the monitor's, feedback and admin labels of the server's live traffic (text kept only).
    The packet is evidence; the approver promotes: breedlab promote ID --to shadow --niche router."""
    from breedlab.ecosystem.config import load_section
    from breedlab.ecosystem.embed import query_embedder
    from breedlab.ecosystem.labels import LabelStore
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


def rollback(
    niche: str,
    reason: Annotated[str, typer.Option(help="why, for the event log")] = "rolled back by an approver",
    identity: IdentityOption = None,
    keys: KeysOption = None,
    home: HomeOption = None,
) -> None:
    """Restore the niche's previous champion in one step (in a signed home, with the approver's key file)."""
    from breedlab.governance.config import load_governance
    from breedlab.governance.promotion import rollback as rollback_niche

    resolved, approver = Home.resolve(home), acting_identity(identity)
    events = rollback_niche(open_registry_as(home, approver, keys), load_governance(resolved.root), niche,
                            approver=approver, reason=reason)
    for event in events:
        console.print(f"{event.type} {event.artifact[:12]}: {event.data.get('from')} -> {event.data.get('to')}")
