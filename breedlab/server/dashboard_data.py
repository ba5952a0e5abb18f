"""What the dashboard shows, as plain JSON: models with state and fitness, routing history, recent events.

Read fresh from the registry on every call (the event log is the single
source of truth; a promotion by the CLI shows up as soon as one by the
admin API). Fitness comes from the newest evidence packet about each model;
the parent's from the champion side of the packets that measured against it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

from breedlab.evaluation.packets import PacketError, load_packet
from breedlab.governance.niche import ACTIVE_STATES, GOVERNANCE_EVENTS
from breedlab.registry import Registry
from breedlab.registry.manifest import MODEL_KINDS

RECENT_EVENTS = 25
FITNESS_KEYS = ("utility", "domain_ppl", "general_regression", "latency_token_ms_p50", "weight_bytes",
                "flops_per_token", "engine", "engine_token_ms")


def snapshot(registry: Registry, routing: list[dict], feedback=None) -> dict:
    """The dashboard's whole state; ``version`` changes exactly when anything shown changes."""
    events = registry.events()
    fitness = evidence_fitness(registry)
    models = [_model(a, fitness.get(a.id), _niches(events, a.id)) for a in registry.find()
              if a.manifest.kind in MODEL_KINDS]
    models.sort(key=lambda m: (m["kind"] != "parent", m["name"]))
    parent = next((m for m in models if m["kind"] == "parent"), None)
    recent = [_event(e) for e in events[-RECENT_EVENTS:]][::-1]
    routing = [{"minute": m["minute"], "served": _by_id(m["served"], models)} for m in routing]
    body = {"parent": parent, "models": [m for m in models if m is not parent], "routing": routing,
            "router": router_policies(registry), "events": recent, "event_count": len(events),
            "approval": [{"model": a.model, "up": a.up, "down": a.down, "rate": a.rate, "bound": a.bound()}
                         for a in (feedback.by_model() if feedback is not None else [])]}
    version = hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return {**body, "version": version, "generated_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def router_policies(registry: Registry) -> list[dict]:
    """Every router policy that went past candidate, oldest first, with its routing packet's suite numbers:
    the champion policy and its served accuracy over time."""
    from breedlab.evaluation.packets import PacketError, load_packet

    measured: dict[str, dict] = {}
    for packet in registry.find(kind="packet"):
        if packet.manifest.recipe.get("packet") == "routing" and packet.manifest.recipe["candidate"] not in measured:
            try:
                measured[packet.manifest.recipe["candidate"]] = load_packet(registry, packet.id)["reports"] \
                    .get("candidate", {}).get("overall", {})
            except PacketError:
                continue
    rows = [{"id": a.id, "name": a.manifest.name, "state": a.state, "policy": a.manifest.recipe.get("policy"),
             "created": a.manifest.created, **{k: measured.get(a.id, {}).get(k) for k in
                                               ("served_queries", "served_snippets", "ood_kept", "p50_ms")}}
            for a in registry.find(kind="router-policy") if a.state not in ("candidate",)]
    return sorted(rows, key=lambda r: r["created"])


def _by_id(served: dict[str, int], models: list[dict]) -> dict[str, int]:
    """Routing counts keyed by artifact id.

    The server counts by public name (``catalogue.name_of``: the artifact name,
    ``name@id12`` when two share it, or ``id12`` for a model no longer served);
    ids keep colours and names stable when a model is renamed or leaves the catalogue.
    """
    out: dict[str, int] = {}
    for key, count in served.items():
        name, _, prefix = key.partition("@")
        matches = [m["id"] for m in models if m["id"] == key or (prefix and m["id"].startswith(prefix))]
        matches = matches or [m["id"] for m in models if m["name"] == name] or \
            [m["id"] for m in models if len(key) >= 6 and m["id"].startswith(key)]
        resolved = matches[0] if len(matches) == 1 else key  # ambiguous or unknown: shown as counted
        out[resolved] = out.get(resolved, 0) + count
    return out


def evidence_fitness(registry: Registry) -> dict[str, dict]:
    """Model id -> fitness of its newest evidence packet (a candidate's own row, else a champion's)."""
    found: dict[str, dict] = {}
    for packet in registry.find(kind="packet"):  # newest first: the first packet seen for a model wins
        if packet.manifest.recipe.get("packet") != "evidence":
            continue
        try:
            body = load_packet(registry, packet.id)
        except PacketError:
            continue  # a malformed packet is no evidence; `breedlab registry verify` reports it
        failed = [g["name"] for g in body["gates"] if not g.get("passed")]
        candidate = {**_measured(body["fitness"]["candidate"]), "niche": body["niche"], "packet": packet.id,
                     "gates": "pass" if not failed else "FAIL " + ",".join(failed),
                     "decision": body["decision"]["outcome"]}
        found.setdefault(body["candidate"], candidate)
        reference = {**_measured(body["fitness"]["champion"]), "niche": body["niche"], "packet": packet.id,
                     "gates": "", "decision": "reference"}
        found.setdefault(body["champion"], reference)
    return found


def _measured(vector: dict) -> dict:
    return {k: vector.get(k) for k in FITNESS_KEYS}


def _niches(events, artifact_id: str) -> list[str]:
    """Niches whose governance events name this model, in the order it entered them."""
    niches = [e.data["niche"] for e in events if e.artifact == artifact_id and e.type in GOVERNANCE_EVENTS
              and isinstance(e.data.get("niche"), str)]
    return list(dict.fromkeys(niches))


def _model(artifact, fitness: dict | None, niches: list[str]) -> dict:
    manifest = artifact.manifest
    return {"id": artifact.id, "name": manifest.name, "kind": manifest.kind, "operator": manifest.operator,
            "domain": manifest.recipe.get("domain"), "ratio": manifest.recipe.get("ratio"),
            "state": artifact.state or "", "parents": list(manifest.parents), "niches": niches,
            "active": artifact.state in ACTIVE_STATES, "fitness": fitness}


def _event(event) -> dict:
    to = event.data.get("to")
    return {"seq": event.seq, "ts": event.ts, "type": event.type, "artifact": event.artifact,
            "actor": event.actor, "reason": event.reason, "to": to if isinstance(to, str) else None,
            "niche": event.data.get("niche") if isinstance(event.data.get("niche"), str) else None}
