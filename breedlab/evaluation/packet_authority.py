"""Evidence under signature: which identity measured, under which evaluation config, checked at promotion.

Every packet records its ``evaluator`` and the sha256 of the evaluation config in force when it was
written (``evaluation_config_sha256``: the canonical JSON of the effective ``EvaluationConfig``, home
overrides included). In a signed home the evaluator also signs the packet's canonical JSON
(``signature.json`` beside ``packet.json``: identity, key fingerprint, ed25519), so the packet proves
who measured it even outside the registry.

``refusal`` is what promotion asks of each packet before it counts as evidence; every reason it gives
names what is wrong, so a refused promotion says why.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from breedlab.evaluation.gate_config import load_evaluation_config
from breedlab.registry import Artifact, Registry
from breedlab.registry.authority import replay_authority
from breedlab.registry.canonical import sha256_file, sha256_json
from breedlab.registry.keys import signature_holds

SIGNATURE_FILE = "signature.json"
STAMP_KEYS = {"evaluator": str, "evaluation_config_sha256": str}
"""Keys a packet written since signed authority carries (optional in the schema: older packets lack them)."""


def evaluation_config_sha256() -> str:
    """The sha256 of the evaluation config in force for this process (shipped file + home override)."""
    return sha256_json(asdict(load_evaluation_config()))


def stamped(body: dict[str, Any], evaluator: str) -> dict[str, Any]:
    return {**body, "evaluator": evaluator, "evaluation_config_sha256": evaluation_config_sha256()}


def write_signature(registry: Registry, body: dict[str, Any], evaluator: str, folder: Path) -> Path | None:
    """``signature.json`` for ``body`` in a signed home (None in an unsigned one)."""
    if not registry.adopted():
        return None
    key = registry.signer_for(evaluator)
    path = folder / SIGNATURE_FILE
    path.write_text(json.dumps({"identity": evaluator, **key.sign(body)}, sort_keys=True) + "\n", encoding="utf-8")
    return path


def refusal(registry: Registry, packet: Artifact, body: dict[str, Any], breeder: str | None) -> str | None:
    """Why ``packet`` may not support a promotion, or None when it may."""
    entry = packet.manifest.files.get("packet.json")
    if entry is None or sha256_file(packet.path / "packet.json") != entry.sha256:
        return "packet.json differs from the bytes registered (altered after it was written)"
    recorded = body.get("evaluation_config_sha256")
    if recorded is not None and recorded != evaluation_config_sha256():
        return (f"measured under evaluation config {recorded[:12]}, not the one in force "
                f"({evaluation_config_sha256()[:12]}): re-evaluate under the current gates")
    if body.get("evaluator") is not None and body["evaluator"] == breeder:
        return f"{breeder!r} both bred the candidate and evaluated it"
    return _signature_refusal(registry, packet, body, breeder) if registry.adopted() else None


def _signature_refusal(registry: Registry, packet: Artifact, body: dict[str, Any], breeder: str | None) -> str | None:
    path = packet.path / SIGNATURE_FILE
    if not path.is_file() or "evaluation_config_sha256" not in body:
        return "the home is signed and this packet carries no evaluator's signature or evaluation config hash"
    try:
        signature = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return f"its signature file is unreadable ({exc})"
    events, _ = registry.log.read()
    key = replay_authority(events).keys.get(signature.get("key", ""))
    if key is None or not key.active:
        return f"signed by key {str(signature.get('key'))[:16]}, not an active key of this home"
    if key.role != "evaluator":
        return f"signed by {key.identity!r}, a {key.role}: only an evaluator's packets count as evidence"
    if key.identity == breeder:
        return f"{breeder!r} both bred the candidate and signed its evidence"
    if not signature_holds(key.public, body, signature.get("ed25519", "")):
        return "packet.json does not match its evaluator's signature (altered)"
    return None
