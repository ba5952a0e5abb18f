"""What every command shares: the console, the ``--home`` option, the registry, failing with one line,
the acting identity and the default parent."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from breedlab.home import Home

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


def default_parent(registry) -> str:
    """The champion parent, else the newest parent."""
    from breedlab.governance.niche import champion_parent

    parent = champion_parent(registry)
    if parent is None:
        fail("no parent registered; run `breedlab parent import smollm2` first")
    return parent.id


IdentityOption = Annotated[
    Optional[str],
    typer.Option("--as", envvar="BREEDLAB_IDENTITY", help="who is acting (must be a configured approver)"),
]


def acting_identity(identity: Optional[str]) -> str:
    if not identity:
        fail("say who is acting with --as NAME or BREEDLAB_IDENTITY (approvers are set in governance.yaml)")
    return identity


KeysOption = Annotated[
    Optional[Path],
    typer.Option("--keys", envvar="BREEDLAB_KEYS", help="key folder holding <identity>.key "
                                                         "[default: ~/.config/breedlab/keys]"),
]


def open_registry_as(home: Optional[Path], identity: str, keys: Optional[Path] = None):
    """The registry, signing as ``identity`` alone: in a signed home its private key comes from its key
    file (a bare name proves nothing), and no other identity's key is loaded."""
    from breedlab.registry import Registry
    from breedlab.registry.keys import KeyFileError, load_key

    registry = Registry.open(Home.resolve(home).registry_dir, signers={})
    if registry.adopted():
        try:
            registry.signers = {identity: load_key(identity, keys)}
        except KeyFileError as error:
            fail(f"this home is signed, so {identity!r} acts only with its key: {error}")
    return registry
