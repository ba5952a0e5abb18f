"""``breedlab keys``: the identities that sign a home's events, and their keys.

Private keys live in a key folder outside every home (``--keys DIR``, else ``$BREEDLAB_KEYS``, else
``~/.config/breedlab/keys``), one ``<identity>.key`` per identity, mode 0600. A home holds public keys
only, each added by an event an approver key signed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from breedlab.cli.common import HomeOption, console, open_registry

key_app = typer.Typer(no_args_is_help=True, help="Identities' signing keys: adopt a home, add, rotate, revoke.")
KeysOption = Annotated[Optional[Path], typer.Option("--keys", help="key folder [default: $BREEDLAB_KEYS or "
                                                                      "~/.config/breedlab/keys]")]
ApproverOption = Annotated[str, typer.Option("--as", help="the approver identity whose key signs the change")]


@key_app.command("init")
def keys_init(keys: KeysOption = None, home: HomeOption = None) -> None:
    """Adopt the home: keys for approver, breeder, evaluator and lifecycle (made where missing); from
    now on every event must be signed."""
    from breedlab.governance.identities import adopt_home

    approver, made = adopt_home(open_registry(home), keys)
    console.print(f"home adopted; new keys: {', '.join(made) or 'none (all found)'}")
    console.print(f"trust anchor (keep it outside the home; `registry verify --anchor`): [bold]{approver.fingerprint}[/]")


@key_app.command("list")
def keys_list(home: HomeOption = None) -> None:
    """The home's public keys: identity, role, fingerprint, the event that added it, whether active."""
    from breedlab.governance.identities import keys_of

    table = Table("identity", "role", "fingerprint", "added at event", "active")
    for key in keys_of(open_registry(home)).values():
        table.add_row(key.identity, key.role, key.fingerprint[:16], str(key.added_seq), "yes" if key.active else "no")
    console.print(table)


@key_app.command("add")
def keys_add(identity: str, role: Annotated[str, typer.Option(help="approver | breeder | evaluator | lifecycle")],
             public: Annotated[Optional[str], typer.Option(help="its public key (hex); default: make a key file")] = None,
             approver: ApproverOption = "approver", keys: KeysOption = None, home: HomeOption = None) -> None:
    """Give a new identity a key, signed by an approver."""
    from breedlab.governance.identities import add_key
    from breedlab.registry.keys import generate_key, load_key

    public_hex = public or generate_key(identity, keys).public_hex
    key = add_key(open_registry(home), load_key(approver, keys), identity, role, public_hex,
                  reason=f"{approver} added {identity} as {role}")
    console.print(f"{identity} ({role}) added: {key.fingerprint}")


@key_app.command("rotate")
def keys_rotate(identity: str, approver: ApproverOption = "approver", keys: KeysOption = None,
                home: HomeOption = None) -> None:
    """A new key for an identity (same role); the old one stops counting from this event on."""
    from breedlab.governance.identities import rotate_key
    from breedlab.registry.keys import load_key

    new = rotate_key(open_registry(home), load_key(approver, keys), identity, keys)
    console.print(f"{identity}'s key rotated: {new.fingerprint}")


@key_app.command("revoke")
def keys_revoke(identity: str, reason: Annotated[str, typer.Option(help="why, for the record")],
                approver: ApproverOption = "approver", keys: KeysOption = None, home: HomeOption = None) -> None:
    """Revoke an identity's key (never the last approver's)."""
    from breedlab.governance.identities import revoke_key
    from breedlab.registry.keys import load_key

    revoke_key(open_registry(home), load_key(approver, keys), identity, reason)
    console.print(f"{identity}'s key revoked")
