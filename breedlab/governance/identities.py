"""Adopting a home into signed authority, and adding, rotating and revoking identities' keys.

Every change here is an event an approver key signs (``registry/authority.py`` says what ``verify``
then demands). The private keys stay in their key folder; the home receives public keys only.
"""

from __future__ import annotations

from pathlib import Path

from breedlab.registry import Registry, RegistryError
from breedlab.registry.authority import HOME, PublicKey, replay_authority
from breedlab.registry.keys import ROLES, SigningKey, generate_key, key_path, load_key

DEFAULT_IDENTITIES = {"approver": "approver", "breeder": "breeder", "evaluator": "evaluator",
                      "lifecycle": "lifecycle"}
"""identity -> role of a new home: one identity per authority domain."""


def keys_of(registry: Registry) -> dict[str, PublicKey]:
    """The home's public keys (fingerprint -> key, revoked ones included) as the log says."""
    events, _ = registry.log.read()
    return replay_authority(events).keys


def adopt_home(registry: Registry, folder: Path | None = None,
               identities: dict[str, str] | None = None) -> tuple[SigningKey, list[str]]:
    """Make the home signed: keys for ``identities`` (made in ``folder`` where missing) adopted by one
    event the approver signs. Returns the approver key (its fingerprint is the trust anchor to pin) and
    the identities whose keys were made now."""
    if registry.adopted():
        raise RegistryError("this home is already adopted; add identities with `breedlab keys add`")
    identities = identities or DEFAULT_IDENTITIES
    approvers = [name for name, role in identities.items() if role == "approver"]
    if len(approvers) != 1 or set(identities.values()) - set(ROLES):
        raise RegistryError(f"adoption needs exactly one approver and roles among {ROLES}")
    made = [name for name in identities if not key_path(name, folder).exists()]
    keys = {name: generate_key(name, folder) if name in made else load_key(name, folder) for name in identities}
    approver = keys[approvers[0]]
    registry.signers = {**(registry.signers or {}), **keys}
    registry.record("adopted", HOME, actor=approver.identity, reason="the home signs its events from here on",
                    data={"keys": {name: {"role": role, "public": keys[name].public_hex}
                                   for name, role in identities.items()}})
    return approver, made


def add_key(registry: Registry, approver: SigningKey, identity: str, role: str, public_hex: str,
            reason: str) -> PublicKey:
    """Give ``identity`` (new, or rotating to a new key in the same role) a public key."""
    if role not in ROLES:
        raise RegistryError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    current = {k.identity: k for k in keys_of(registry).values() if k.active}
    if identity in current and current[identity].role != role:
        raise RegistryError(f"{identity!r} is a {current[identity].role}; an identity keeps its one role")
    _check_is_approver(registry, approver)
    registry.signers = {**(registry.signers or {}), approver.identity: approver}
    event = registry.record("key-added", HOME, actor=approver.identity, reason=reason,
                            data={"identity": identity, "role": role, "public": public_hex})
    return PublicKey(identity, role, public_hex, event.seq)


def rotate_key(registry: Registry, approver: SigningKey, identity: str, folder: Path | None = None) -> SigningKey:
    """A new key for ``identity`` in its role; its old key file is kept as ``<identity>.key.<seq>``."""
    current = {k.identity: k for k in keys_of(registry).values() if k.active}
    if identity not in current:
        raise RegistryError(f"{identity!r} has no active key in this home")
    old = key_path(identity, folder)
    if old.exists():
        old.rename(old.with_name(f"{old.name}.{current[identity].added_seq}"))
    new = generate_key(identity, folder)
    add_key(registry, approver, identity, current[identity].role, new.public_hex, reason=f"rotated {identity}'s key")
    if identity == approver.identity:
        registry.signers[identity] = new
    return new


def revoke_key(registry: Registry, approver: SigningKey, identity: str, reason: str) -> None:
    current = [k for k in keys_of(registry).values() if k.active]
    target = next((k for k in current if k.identity == identity), None)
    if target is None:
        raise RegistryError(f"{identity!r} has no active key in this home")
    if target.role == "approver" and sum(k.role == "approver" for k in current) == 1:
        raise RegistryError("that is the home's last approver key: add another approver first")
    _check_is_approver(registry, approver)
    registry.signers = {**(registry.signers or {}), approver.identity: approver}
    registry.record("key-revoked", HOME, actor=approver.identity, reason=reason,
                    data={"identity": identity, "fingerprint": target.fingerprint})


def _check_is_approver(registry: Registry, approver: SigningKey) -> None:
    key = keys_of(registry).get(approver.fingerprint)
    if key is None or not key.active or key.role != "approver" or key.identity != approver.identity:
        raise RegistryError(f"{approver.identity!r}'s key {approver.fingerprint[:16]} is not an active approver key "
                            "of this home")
