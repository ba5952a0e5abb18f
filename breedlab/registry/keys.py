"""Identities' ed25519 keys: private keys in their holders' key files, never in a home.

An identity (``approver``, ``breeder``, ``evaluator``, ``lifecycle``, or any name a home adds) signs
with its private key; a home holds only public keys, each added by an event an approver signed
(``registry/authority.py``). A private key is a PKCS#8 PEM file ``<identity>.key``, mode 0600, in a
key folder outside the home: ``--keys DIR``, else ``$BREEDLAB_KEYS``, else ``~/.config/breedlab/keys``.
A key file others can read is refused, as ssh refuses one: a key anyone could copy proves nothing.

What is signed is always canonical JSON (``canonical.py``), so a signature checks the same content
however the JSON was laid out on disk. A key's fingerprint is the sha256 of its raw public bytes.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from breedlab.registry.atomic import atomic_write_bytes
from breedlab.registry.canonical import canonical_json, sha256_bytes
from breedlab.registry.errors import RegistryError

KEYS_ENV = "BREEDLAB_KEYS"
DEFAULT_KEY_DIR = Path("~/.config/breedlab/keys")
ROLES = ("approver", "breeder", "evaluator", "lifecycle")
"""Authority domains (seed 000): breeding, evaluating and approving are separate; ``lifecycle`` is the
steward's (lease reviews, retirements, gc)."""


class KeyFileError(RegistryError):
    """A key file is missing, unreadable, too open, or a signature does not check."""


def key_dir(explicit: Path | None = None) -> Path:
    """Where private keys live: the flag, else ``$BREEDLAB_KEYS``, else ``~/.config/breedlab/keys``."""
    chosen = explicit or (Path(os.environ[KEYS_ENV]) if os.environ.get(KEYS_ENV) else DEFAULT_KEY_DIR)
    return Path(chosen).expanduser()


@dataclass(frozen=True)
class SigningKey:
    """One identity's private key (held in memory only while a process signs)."""

    identity: str
    private: Any  # cryptography's Ed25519PrivateKey

    @property
    def public_hex(self) -> str:
        from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

        return self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.public_hex)

    def sign(self, value: Any) -> dict[str, str]:
        """The signature record of ``value``'s canonical JSON: ``{"key": fingerprint, "ed25519": hex}``."""
        return {"key": self.fingerprint, "ed25519": self.private.sign(canonical_json(value)).hex()}


def fingerprint(public_hex: str) -> str:
    return sha256_bytes(bytes.fromhex(public_hex))


def signature_holds(public_hex: str, value: Any, signature_hex: str) -> bool:
    """Whether ``signature_hex`` is the key's ed25519 signature of ``value``'s canonical JSON."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_hex)).verify(
            bytes.fromhex(signature_hex), canonical_json(value))
        return True
    except (InvalidSignature, ValueError):
        return False


def key_path(identity: str, directory: Path | None = None) -> Path:
    if not identity or "/" in identity or identity.startswith("."):
        raise KeyFileError(f"not an identity name: {identity!r}")
    return key_dir(directory) / f"{identity}.key"


def generate_key(identity: str, directory: Path | None = None) -> SigningKey:
    """A new key for ``identity``, written 0600 (never over an existing key file)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    path = key_path(identity, directory)
    if path.exists():
        raise KeyFileError(f"{path} exists; a key is never overwritten (rotate it with `breedlab keys rotate`)")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    atomic_write_bytes(path, pem, mode=0o600)
    return SigningKey(identity, private)


def load_key(identity: str, directory: Path | None = None) -> SigningKey:
    """``identity``'s private key from its key file; a clear error when it is missing or too open."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    path = key_path(identity, directory)
    if not path.is_file():
        raise KeyFileError(f"no private key for {identity!r} at {path} (set --keys or ${KEYS_ENV})")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise KeyFileError(f"{path} is readable by others (mode {mode:o}); `chmod 600 {path}`")
    try:
        private = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise KeyFileError(f"{path} is not a PEM private key: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(private).__name__}, not an ed25519 key")
    return SigningKey(identity, private)


def available_keys(directory: Path | None = None) -> dict[str, SigningKey]:
    """Every identity whose key file is in the key folder (a process signs as any of them)."""
    folder = key_dir(directory)
    if not folder.is_dir():
        return {}
    return {path.stem: load_key(path.stem, folder) for path in sorted(folder.glob("*.key"))}
