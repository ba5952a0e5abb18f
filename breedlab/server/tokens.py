"""Bearer tokens with roles: the server's separate authority domains.

A token is shown once, when it is made; the token file keeps only its
sha256, so a leaked ``server-tokens.json`` grants nothing. Roles mirror
governance.yaml (seed 000: "candidate generation and evaluator governance
must be separate authority domains"): an ``approver`` token only for a
configured approver, a ``breeder`` token only for the breeding identity,
``inference`` for anyone who may call /v1/*.

File format (``<home>/server-tokens.json``, mode 0600, written atomically)::

    {"version": 1,
     "tokens": [{"sha256": "<64 hex>", "identity": "alice", "role": "approver",
                 "created": "2025-01-01T00:00:00Z"}]}
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from breedlab.governance.config import GovernanceConfig
from breedlab.registry.atomic import atomic_write_bytes, exclusive_lock

TOKEN_FILE = "server-tokens.json"
ROLES = ("approver", "breeder", "inference")
TOKEN_PREFIX = "bl_"


class TokenError(ValueError):
    """A token request that governance does not allow, or a malformed token file."""


@dataclass(frozen=True)
class TokenEntry:
    sha256: str
    """Hex sha256 of the token; the token itself is never stored."""
    identity: str
    """Who acts when this token is presented (recorded as the actor of events)."""
    role: str
    """approver | breeder | inference."""
    created: str
    """UTC creation time, ISO 8601."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_role(config: GovernanceConfig, identity: str, role: str) -> None:
    """Refuse a role that governance.yaml does not grant to ``identity``."""
    if role not in ROLES:
        raise TokenError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if not identity or not identity.strip():
        raise TokenError("identity must not be empty")
    if role == "approver" and identity not in config.approvers:
        raise TokenError(f"{identity!r} is not a configured approver (approvers: {', '.join(config.approvers)})")
    if role == "breeder" and identity != config.breeder:
        raise TokenError(f"the breeder role belongs to {config.breeder!r}, not {identity!r}")
    if role == "inference" and identity == config.breeder:
        # The breeding worker never needs to serve users; keeping it single-role keeps its token narrow.
        raise TokenError(f"{identity!r} is the breeding identity; give it the breeder role only")


class TokenBook:
    """The token file of one home, looked up by presented token.

    The file is re-read when its size or mtime changes, so a token made with
    ``breedlab serve token create`` works on a running server without a
    restart, and a line deleted from the file stops working just as soon.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._entries: tuple[TokenEntry, ...] = ()

    @property
    def entries(self) -> tuple[TokenEntry, ...]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return ()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp != self._stamp:
            # Assign both together: a concurrent reader sees the old pair or the new one.
            self._entries, self._stamp = _parse(self.path), stamp
        return self._entries

    def lookup(self, token: str) -> TokenEntry | None:
        """The entry whose hash matches ``token`` (constant-time compare), or None."""
        digest = hash_token(token)
        found = None
        for entry in self.entries:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    def by_role(self, role: str) -> list[TokenEntry]:
        return [e for e in self.entries if e.role == role]


def check_signed_identity(home: Path, identity: str, role: str) -> None:
    """In a signed home an approver or breeder token acts as that identity's key (the server signs its
    events with it): refuse a token for an identity that holds no active key of the token's role."""
    from breedlab.governance.identities import keys_of
    from breedlab.registry import Registry

    registry_dir = Path(home) / "registry"
    if role == "inference" or not registry_dir.is_dir():
        return
    registry = Registry.open(registry_dir)
    if not registry.adopted():
        return
    held = [k for k in keys_of(registry).values() if k.identity == identity and k.active]
    if not held or held[0].role != role:
        have = f"holds a {held[0].role} key" if held else "holds no key"
        raise TokenError(f"this home is signed and {identity!r} {have}; a {role} token needs an identity with an "
                         f"active {role} key (`breedlab keys add {identity} --role {role}`)")


def token_path(home: Path) -> Path:
    return Path(home) / TOKEN_FILE


def read_book(home: Path) -> TokenBook:
    """The home's token book (empty until a token is made); a malformed file raises TokenError now."""
    book = TokenBook(token_path(home))
    book.entries  # noqa: B018 - parse once so a broken file fails at startup, not on the first admin call
    return book


def _parse(path: Path) -> tuple[TokenEntry, ...]:
    try:
        raw = json.loads(path.read_text())
        entries = tuple(TokenEntry(**item) for item in raw["tokens"])
    except (ValueError, KeyError, TypeError) as error:
        raise TokenError(f"{path}: malformed token file ({type(error).__name__})") from None
    for entry in entries:
        if entry.role not in ROLES or len(entry.sha256) != 64:
            raise TokenError(f"{path}: bad entry for {entry.identity!r}")
    return entries


def create_token(home: Path, config: GovernanceConfig, identity: str, role: str,
                 now: datetime | None = None) -> str:
    """Make a token for ``identity`` in ``role``, store its hash, and return it (shown once)."""
    check_role(config, identity, role)
    check_signed_identity(home, identity, role)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = TokenEntry(sha256=hash_token(token), identity=identity, role=role, created=created)
    path = token_path(home)
    # Two `token create` runs at once must not drop each other's entry.
    with exclusive_lock(path.with_name(TOKEN_FILE + ".lock")):
        existing = _parse(path) if path.is_file() else ()
        body = {"version": 1, "tokens": [asdict(e) for e in (*existing, entry)]}
        atomic_write_bytes(path, (json.dumps(body, indent=2, sort_keys=True) + "\n").encode(), mode=0o600)
    return token
