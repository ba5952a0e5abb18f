"""Evidence and release packets: the registry artifacts every decision rests on.

An *evidence packet* records one champion-challenger evaluation: when and
where it ran, the suites, both fitness vectors in full (per-case lists
included, so anyone can re-run the paired tests from the packet alone), the
gate results, the test statistics, the decision with its reasons, and which
metrics were not measured and why. A *release packet* records one selection:
the population kept (ids and roles), the decision, its reasons, the rollback
target and the evidence packets it rests on (its registry parents).

Each is registered as kind ``packet`` with ``packet.json`` (schema-versioned,
sorted keys, so byte-identical apart from ``created_utc``) and ``packet.md``
(the same content as tables). JSON has no NaN: a non-finite number is written
as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np

from breedlab.evaluation.decision import Decision, Selection
from breedlab.evaluation.fitness import FitnessVector
from breedlab.evaluation.gates import GateResult
from breedlab.evaluation.packet_authority import SIGNATURE_FILE, STAMP_KEYS, stamped, write_signature
from breedlab.registry import Artifact, Registry
from breedlab.registry.events import utc_now

PACKET_SCHEMA = 1
NICHE = re.compile(r"^[a-z][a-z0-9_-]*$")
UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
NOT_METRICS = {"candidate", "suites", "machine", "measured_utc", "unmeasured"}
EVALUATOR = "evaluator"
"""The evaluating identity packets are written as unless told (``GovernanceConfig.evaluator``)."""
COMMON_KEYS = {"schema": int, "type": str, "created_utc": str, "niche": str}
REQUIRED_KEYS = {
    "evidence": {"candidate": str, "champion": str, "machine": dict, "suites": dict, "fitness": dict,
                 "gates": list, "statistics": dict, "decision": dict, "unmeasured": dict},
    "release": {"population": list, "decision": str, "no_op": bool, "reasons": list,
                "rollback_target": str, "evidence": list, "outcomes": dict},
    # a router policy's evaluation on the frozen routing suite (ecosystem/router/evidence.py)
    "routing": {"candidate": str, "champion": str, "suite": str, "machine": dict, "reports": dict,
                "gates": list, "decision": dict},
}


class PacketError(ValueError):
    """A packet is malformed or does not follow its schema; the message says which and how."""


def describe_machine() -> str:
    """The writing machine in words (no host name: that is in the manifest's record already)."""
    return (f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {platform.python_version()}")


def evidence_body(champion: FitnessVector, challenger: FitnessVector, gates: Sequence[GateResult],
                  decision: Decision, *, niche: str) -> dict[str, Any]:
    """The evidence packet's JSON content (every field of both fitness vectors)."""
    return _plain({
        "schema": PACKET_SCHEMA, "type": "evidence", "created_utc": utc_now(), "niche": _niche(niche),
        "candidate": challenger.candidate, "champion": champion.candidate,
        "machine": {"candidate": challenger.machine, "champion": champion.machine, "writer": describe_machine()},
        "suites": {"candidate": dict(challenger.suites), "champion": dict(champion.suites)},
        "fitness": {"candidate": challenger.to_dict(), "champion": champion.to_dict()},
        "gates": [asdict(g) for g in gates],
        "statistics": decision.statistics,
        "decision": {"outcome": decision.outcome, "reasons": list(decision.reasons)},
        "unmeasured": {"candidate": unmeasured(challenger), "champion": unmeasured(champion)},
    })


def unmeasured(fitness: FitnessVector) -> dict[str, str]:
    """Metric -> why it is missing: the recorded reason, or a plain statement that none was given."""
    missing = dict(fitness.unmeasured)
    for f in fields(fitness):
        value = getattr(fitness, f.name)
        if f.name not in NOT_METRICS and (value is None or value == []):
            missing.setdefault(f.name, "not measured; no reason recorded")
    return dict(sorted(missing.items()))


def write_evidence_packet(registry: Registry, champion: FitnessVector, challenger: FitnessVector,
                          gates: Sequence[GateResult], decision: Decision, *, niche: str,
                          parents: Sequence[str] | None = None, evaluator: str = EVALUATOR) -> Artifact:
    """Register one evaluation's evidence packet, as ``evaluator``.

    ``parents`` default to the challenger alone; any given are kept and the
    challenger's id is put first if missing. The suites of both vectors become
    the packet's ``data`` links, so they must be committed artifacts.
    """
    registry.get(champion.candidate)  # a packet must name a real champion
    links = list(dict.fromkeys([challenger.candidate, *(parents or ())]))
    suites = sorted({*challenger.suites.values(), *champion.suites.values()})
    body = evidence_body(champion, challenger, gates, decision, niche=niche)
    recipe = {"packet": "evidence", "niche": niche, "candidate": challenger.candidate,
              "champion": champion.candidate, "suites": suites}
    metrics = {"outcome": decision.outcome, "gates_passed": all(g.passed for g in gates)}
    return _register(registry, body, f"evidence/{niche}/{challenger.candidate[:12]}", evaluator,
                     operator="evaluate", recipe=recipe, parents=links, data=suites, metrics=metrics)


def release_body(selection: Selection, evidence_ids: Sequence[str], *, niche: str,
                 rollback_target: str) -> dict[str, Any]:
    """The release packet's JSON content."""
    roles = (("champion", selection.champion), ("useful_specialist", selection.useful_specialist),
             ("diverse_challenger", selection.diverse_challenger))
    return _plain({
        "schema": PACKET_SCHEMA, "type": "release", "created_utc": utc_now(), "niche": _niche(niche),
        "population": [{"role": role, "id": ident} for role, ident in roles if ident],
        "decision": "no-op" if selection.no_op else "promote", "no_op": selection.no_op,
        "reasons": list(selection.reasons), "rollback_target": rollback_target,
        "evidence": list(evidence_ids), "outcomes": dict(sorted(selection.outcomes.items())),
    })


def write_release_packet(registry: Registry, selection: Selection, evidence_ids: Sequence[str], *,
                         niche: str, rollback_target: str, evaluator: str = EVALUATOR) -> Artifact:
    """Register one selection's release packet; its parents are the evidence packets it rests on."""
    evidence_ids = [registry.get(ref).id for ref in dict.fromkeys(evidence_ids)]
    if not evidence_ids:
        raise PacketError("a release packet needs at least one evidence packet to rest on")
    for ref in evidence_ids:
        if load_packet(registry, ref)["type"] != "evidence":
            raise PacketError(f"{ref[:12]} is not an evidence packet")
    rollback_target = registry.get(rollback_target).id  # one must be able to roll back to it
    body = release_body(selection, evidence_ids, niche=niche, rollback_target=rollback_target)
    recipe = {"packet": "release", "niche": niche, "rollback_target": rollback_target,
              "population": {p["role"]: p["id"] for p in body["population"]}}
    return _register(registry, body, f"release/{niche}", evaluator, operator="select", recipe=recipe,
                     parents=evidence_ids, data=[], metrics={"decision": body["decision"]})


def write_routing_packet(registry: Registry, *, candidate: str, champion: str | None, suite: str,
                         reports: dict, gates: list[dict], decision: dict, niche: str = "router",
                         evaluator: str = EVALUATOR) -> Artifact:
    """Register a router policy's routing evidence; ``champion`` None: judged against the parent-only route."""
    body = _plain({"schema": PACKET_SCHEMA, "type": "routing", "created_utc": utc_now(), "niche": _niche(niche),
                   "candidate": candidate, "champion": champion or "parent-only", "suite": suite,
                   "machine": {"writer": describe_machine()}, "reports": reports, "gates": gates,
                   "decision": decision})
    recipe = {"packet": "routing", "niche": niche, "candidate": candidate, "champion": champion, "suite": suite}
    parents = [candidate, *([champion] if champion else [])]
    return _register(registry, body, f"routing/{candidate[:12]}", evaluator, operator="evaluate-router", recipe=recipe,
                     parents=parents, data=[suite], metrics={"outcome": decision["outcome"],
                                                           "gates_passed": all(g["passed"] for g in gates)})


def load_packet(registry: Registry, packet_id: str) -> dict[str, Any]:
    """The packet's JSON content, after checking it against the schema; PacketError if it fails."""
    artifact = registry.get(packet_id)
    if artifact.manifest.kind != "packet":
        raise PacketError(f"{artifact.id[:12]} is a {artifact.manifest.kind}, not a packet")
    source = f"packet {artifact.id[:12]}"
    try:
        body = json.loads((artifact.path / "packet.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PacketError(f"{source}: packet.json is missing or not valid JSON ({exc})") from exc
    return validate_packet(body, source=source)


def validate_packet(body: Any, *, source: str = "packet") -> dict[str, Any]:
    """Check the schema version, the packet type and every key's presence and type."""
    if not isinstance(body, dict):
        raise PacketError(f"{source}: a packet must be a JSON object")
    if body.get("schema") != PACKET_SCHEMA:
        raise PacketError(f"{source}: unsupported packet schema {body.get('schema')!r} (expected {PACKET_SCHEMA})")
    if body.get("type") not in REQUIRED_KEYS:
        raise PacketError(f"{source}: packet type must be one of {sorted(REQUIRED_KEYS)}, got {body.get('type')!r}")
    expected = {**COMMON_KEYS, **REQUIRED_KEYS[body["type"]]}
    missing, unknown = sorted(set(expected) - set(body)), sorted(set(body) - set(expected) - set(STAMP_KEYS))
    if missing or unknown:
        raise PacketError(f"{source}: missing keys {missing}, unknown keys {unknown}")
    wrong = [key for key, kind in {**expected, **STAMP_KEYS}.items() if key in body and not isinstance(body[key], kind)]
    if wrong:
        raise PacketError(f"{source}: wrong types for {wrong}")
    if not UTC.match(body["created_utc"]):
        raise PacketError(f"{source}: created_utc {body['created_utc']!r} is not a UTC timestamp ending in Z")
    if body["type"] in ("evidence", "routing") and body["decision"].get("outcome") not in ("promote", "reject", "no-op"):
        raise PacketError(f"{source}: unknown decision outcome {body['decision'].get('outcome')!r}")
    return body


def _register(registry: Registry, body: dict[str, Any], name: str, evaluator: str, **manifest: Any) -> Artifact:
    """Write packet.json, packet.md (and, in a signed home, the evaluator's signature.json) to a scratch
    folder and register them as one packet, as the evaluator."""
    body = stamped(body, evaluator)
    validate_packet(body, source=name)  # never register what load_packet would refuse
    text = json.dumps(body, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    with tempfile.TemporaryDirectory(prefix="breedlab-packet-") as scratch:
        folder = Path(scratch)
        (folder / "packet.json").write_text(text, encoding="utf-8")
        (folder / "packet.md").write_text(render_markdown(body), encoding="utf-8")
        files = {"packet.json": folder / "packet.json", "packet.md": folder / "packet.md"}
        signature = write_signature(registry, body, evaluator, folder)
        if signature is not None:
            files[SIGNATURE_FILE] = signature
        return registry.register("packet", name, files, actor=evaluator, **manifest)


def _niche(niche: str) -> str:
    if not isinstance(niche, str) or not NICHE.match(niche):
        raise PacketError(f"niche {niche!r} must be lower-case letters, digits, '-' or '_'")
    return niche


def _plain(value: Any) -> Any:
    """JSON-ready copy: tuples to lists, numpy scalars to Python, non-finite floats to strings."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    return value


# ----- Markdown: the same content as tables, rendered from the JSON body alone ----------


def render_markdown(body: dict[str, Any]) -> str:
    """packet.md for an evidence or release packet body."""
    render = {"evidence": _render_evidence, "release": _render_release, "routing": _render_routing}[body["type"]]
    lines = render(body)
    return "\n".join(lines).rstrip() + "\n"


def _render_evidence(body: dict[str, Any]) -> list[str]:
    decision, fit = body["decision"], body["fitness"]
    lines = [f"# Evidence packet: {body['niche']}, candidate {body['candidate'][:12]}", "",
             f"**Decision: {decision['outcome']}**", "", *[f"- {r}" for r in decision["reasons"]], "",
             *_table(("field", "value"), [
                 ("candidate", f"`{body['candidate']}`"), ("champion", f"`{body['champion']}`"),
                 ("created (UTC)", body["created_utc"]),
                 *[(f"machine ({k})", v) for k, v in sorted(body["machine"].items())],
                 *[(f"suite {kind}", f"`{sid}`") for kind, sid in sorted(body["suites"]["candidate"].items())],
             ]), "", "## Gates", "",
             *_table(("gate", "result", "value", "limit", "reason"), [
                 (g["name"], "pass" if g["passed"] else "FAIL", _cell(g["value"]), _cell(g["limit"]), g["reason"])
                 for g in body["gates"]]), "", "## Metrics", ""]
    # The contract's field order groups related metrics; it does not depend on how the JSON was sorted.
    order = [f.name for f in fields(FitnessVector)]
    names = [k for k in sorted(fit["candidate"], key=lambda k: (order.index(k) if k in order else len(order), k))
             if k not in NOT_METRICS]
    lines += _table(("metric", "champion", "candidate"),
                    [(n, _cell(fit["champion"].get(n)), _cell(fit["candidate"].get(n))) for n in names])
    for axis, stats in sorted(body["statistics"].items()):
        lines += ["", f"## Statistics: {axis}", ""]
        if isinstance(stats, dict):
            rows = sorted(stats.items())
        else:  # None: the axis was not compared; a list: e.g. the names of failed gates
            rows = [("result", "not compared" if stats is None else stats)]
        lines += _table(("statistic", "value"), [(k, _cell(v)) for k, v in rows])
    lines += ["", "## Not measured", ""]
    lines += _table(("side", "metric", "why"), [(side, metric, why) for side, missing in
                                                sorted(body["unmeasured"].items()) for metric, why in missing.items()])
    return lines


def _render_release(body: dict[str, Any]) -> list[str]:
    return [f"# Release packet: {body['niche']}", "", f"**Decision: {body['decision']}**", "",
            *[f"- {r}" for r in body["reasons"]], "", "## Population kept", "",
            *_table(("role", "artifact"), [(p["role"], f"`{p['id']}`") for p in body["population"]]), "",
            *_table(("field", "value"), [
                ("created (UTC)", body["created_utc"]), ("rollback target", f"`{body['rollback_target']}`"),
                ("no-op", _cell(body["no_op"])), *[("evidence packet", f"`{e}`") for e in body["evidence"]],
            ]), "", "## Every candidate's outcome", "",
            *_table(("candidate", "outcome"), [(f"`{c}`", o) for c, o in body["outcomes"].items()])]


def _render_routing(body: dict[str, Any]) -> list[str]:
    sides = [s for s in ("champion", "candidate") if body["reports"].get(s)]
    groups = sorted({g for s in sides for g in body["reports"][s] if g != "overall"})
    keys = ("served_accuracy", "accuracy", "ood_parent_share", "p50_full_ms")
    return [f"# Routing evidence: candidate {body['candidate'][:12]} vs {body['champion'][:12]}", "",
            f"**Decision: {body['decision']['outcome']}**", "", *[f"- {r}" for r in body["decision"]["reasons"]],
            "", f"Suite `{body['suite']}`.", "", "## Gates", "",
            *_table(("gate", "result", "value", "limit", "reason"), [
                (g["name"], "pass" if g["passed"] else "FAIL", _cell(g["value"]), _cell(g["limit"]), g["reason"])
                for g in body["gates"]]), "", "## Per group", "",
            *_table(("side", "group", *keys), [(s, g, *[_cell(body["reports"][s].get(g, {}).get(k)) for k in keys])
                                                for s in sides for g in groups])]


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    if not rows:
        return ["(none)"]
    out = [f"| {' | '.join(header)} |", f"|{'---|' * len(header)}"]
    return out + [f"| {' | '.join(_escape(c) for c in row)} |" for row in rows]


def _escape(cell: Any) -> str:
    """A pipe inside a cell would end it early; newlines would end the row."""
    return str(cell).replace("|", "\\|").replace("\n", " ")


def _cell(value: Any) -> str:
    """A table cell: None as 'not measured', per-case lists by their length, floats to 6 digits."""
    if value is None:
        return "not measured"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "-"
    if isinstance(value, list):
        return f"{len(value)} cases"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in sorted(value.items())) or "-"
    return str(value)
