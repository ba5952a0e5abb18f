"""``breedlab serve token ...``: make and list the server's bearer tokens.

The token is printed once, on stdout alone (so ``TOKEN=$(breedlab serve token
create ...)`` works); only its sha256 is kept in ``<home>/server-tokens.json``.
Added to the CLI as a sub-app of ``serve``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

token_app = typer.Typer(no_args_is_help=True, help="Bearer tokens for the server's admin and inference endpoints.")

HomeOption = Annotated[
    Path | None,
    typer.Option("--home", envvar="BREEDLAB_HOME", help="breedlab home folder [default: ~/.cache/breedlab]"),
]


@token_app.command("create")
def token_create(
    identity: Annotated[str, typer.Option("--identity", help="who acts with this token (events name them)")],
    role: Annotated[str, typer.Option("--role", help="approver | breeder | inference")],
    home: HomeOption = None,
) -> None:
    """Make a token; it must agree with governance.yaml (approvers, the breeder identity). Shown once."""
    from breedlab.governance.config import load_governance
    from breedlab.home import Home
    from breedlab.server.tokens import TokenError, create_token, token_path

    resolved = Home.resolve(home)
    try:
        token = create_token(resolved.root, load_governance(resolved.root), identity, role)
    except (TokenError, ValueError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(token)
    print(f"{role} token for {identity!r} stored (hash only) in {token_path(resolved.root)}; "
          "it is not shown again", file=sys.stderr)


@token_app.command("list")
def token_list(home: HomeOption = None) -> None:
    """Identities, roles and creation times of the stored tokens (hash prefixes, never tokens)."""
    from breedlab.home import Home
    from breedlab.server.tokens import read_book

    for entry in read_book(Home.resolve(home).root).entries:
        typer.echo(f"{entry.identity}\t{entry.role}\t{entry.created}\tsha256:{entry.sha256[:12]}")
