"""The timeline a report is drawn from: its schema, and the check of every field the page reads.

Timeline schema (``?`` marks an optional field, filled with the default shown)::

    {
     "title": str, "profile": "quick" | "full", "created_utc": "2026-11-22T20:00:00Z",
     "machine": str, "command": str,
     "parent": {"id": str, "name": str, "flops_per_token": float, "weight_bytes": int},
     "domains": [str, ...],                      # traffic domains, e.g. ["general", "code"]
     "windows": [{"index": int, "phase": str, "queries": int,
                  "mix": {domain: count},        # true domains of the window's queries
                  "served": {model_id | "parent": count},   # who served them
                  "sigma"?: {domain: float} = {},           # detector score per domain
                  "flops": {"served": float, "parent_only": float},
                  "latency_ms"?: {"served": float, "parent_only": float} | null}],
     "events": [{"window": int, "type": str, "artifact": str, "ts"?: str = "",
                 "actor"?: str = "", "reason"?: str = "", "data"?: dict = {}}],
     "models": [{"id": str, "name": str, "state": str, "parents": [str],
                 "kind"?: str = "", "operator"?: str = "", "domain"?: str | null,
                 "ratio"?: float | null,
                 "fitness"?: {"utility", "domain_ppl", "general_regression",
                              "latency_token_ms_p50", "weight_bytes", "flops_per_token":
                                  float | null (each optional),
                              "gates"?: "pass" | "FAIL ...", "decision"?: str} | null}],
     "compute": {"coverage": float, "ratio": float,
                 "saving_flops": float,           # speed-up factor: parent-only / served FLOPs
                 "saving_time"?: float | null,    # the same for measured wall time (both over the scope the notes say)
                 "paper_table3"?: float | null,   # default: paper_table3(coverage, ratio)
                 "paper_cell"?: str, "formula"?: str, "notes"?: [str]},
     "tau_spawn": float,
     "breed_costs"?: {"rows": [{"name": str, "operator": str, "cpu_seconds": float, "flops": float,
                                "p"?: float | null}],
                      "terms": [[term, value, how], ...]} | null   # Equation 1 from measured costs
    }

``models`` may list the parent itself (id == parent.id, as the demo does): its
fitness fills the reference row of the fitness table and it is not counted as
bred. Extra keys anywhere are ignored. Ids are 64-hex sha256 digests; the page
shows their first 12 characters.
"""

from __future__ import annotations

from typing import Any

from breedlab.report.table3 import paper_table3

PROFILES = ("quick", "full")

def validate_timeline(timeline: Any) -> dict:
    """A normalised copy of ``timeline`` (optional fields filled) or ValueError naming the field."""
    t = _obj(timeline, "timeline")
    out = {key: _get(t, key, str, "timeline") for key in ("title", "created_utc", "machine", "command")}
    out["profile"] = _get(t, "profile", str, "timeline")
    if out["profile"] not in PROFILES:
        raise ValueError(f"timeline.profile: expected one of {PROFILES}, got {out['profile']!r}")
    parent = _obj(t.get("parent"), "timeline.parent")
    out["parent"] = {"id": _get(parent, "id", str, "timeline.parent"),
                     "name": _get(parent, "name", str, "timeline.parent"),
                     "flops_per_token": _num(parent, "flops_per_token", "timeline.parent"),
                     "weight_bytes": _get(parent, "weight_bytes", int, "timeline.parent")}
    out["domains"] = [_str(d, f"timeline.domains[{i}]") for i, d in enumerate(_list(t, "domains", "timeline"))]
    out["windows"] = [_window(w, f"timeline.windows[{i}]") for i, w in enumerate(_list(t, "windows", "timeline"))]
    if not out["windows"]:
        raise ValueError("timeline.windows: needs at least one window")
    out["events"] = [_event(e, f"timeline.events[{i}]") for i, e in enumerate(_list(t, "events", "timeline"))]
    models = [_model(m, f"timeline.models[{i}]") for i, m in enumerate(_list(t, "models", "timeline"))]
    # the parent may be listed among the models (with its measured fitness): it is the reference, not a child
    out["parent"]["fitness"] = next((m["fitness"] for m in models if m["id"] == out["parent"]["id"]), None)
    out["models"] = [m for m in models if m["id"] != out["parent"]["id"]]
    out["compute"] = _compute(t.get("compute"), "timeline.compute")
    out["tau_spawn"] = _num(t, "tau_spawn", "timeline")
    out["breed_costs"] = None if t.get("breed_costs") is None else _breed_costs(t["breed_costs"], "timeline.breed_costs")
    return out


def _breed_costs(c: Any, path: str) -> dict:
    c = _obj(c, path)
    rows = []
    for i, r in enumerate(_list(c, "rows", path)):
        r, at = _obj(r, f"{path}.rows[{i}]"), f"{path}.rows[{i}]"
        rows.append({"name": _get(r, "name", str, at), "operator": _get(r, "operator", str, at),
                     "cpu_seconds": _num(r, "cpu_seconds", at), "flops": _num(r, "flops", at),
                     "p": None if r.get("p") is None else _num(r, "p", at)})
    terms = [[_str(v, f"{path}.terms[{i}][{j}]") for j, v in enumerate(_listed(t, f"{path}.terms[{i}]"))]
             for i, t in enumerate(_list(c, "terms", path))]
    if any(len(t) != 3 for t in terms):
        raise ValueError(f"{path}.terms: each term is [term, value, how]")
    return {"rows": rows, "terms": terms}


def _window(w: Any, path: str) -> dict:
    w = _obj(w, path)
    latency = w.get("latency_ms")
    return {"index": _get(w, "index", int, path), "phase": _get(w, "phase", str, path),
            "queries": _get(w, "queries", int, path),
            "mix": _counts(w, "mix", path), "served": _counts(w, "served", path),
            "sigma": _counts(w, "sigma", path) if w.get("sigma") is not None else {},
            "flops": _pair(w.get("flops"), f"{path}.flops"),
            "latency_ms": None if latency is None else _pair(latency, f"{path}.latency_ms"),
            "routing": _routing(w.get("routing"), f"{path}.routing")}


def _routing(r: Any, path: str) -> dict:
    """shape -> {queries, right} (absent in timelines written before issue 12: empty)."""
    if r is None:
        return {}
    r = _obj(r, path)
    return {shape: {"queries": _get(_obj(v, f"{path}.{shape}"), "queries", int, path),
                    "right": _get(_obj(v, f"{path}.{shape}"), "right", int, path)} for shape, v in r.items()}


def _event(e: Any, path: str) -> dict:
    e = _obj(e, path)
    data = e.get("data") or {}
    return {"window": _get(e, "window", int, path), "type": _get(e, "type", str, path),
            "artifact": _get(e, "artifact", str, path), "ts": _opt_str(e, "ts", path),
            "actor": _opt_str(e, "actor", path), "reason": _opt_str(e, "reason", path),
            "data": _obj(data, f"{path}.data")}


def _model(m: Any, path: str) -> dict:
    m = _obj(m, path)
    parents = [_str(p, f"{path}.parents[{i}]") for i, p in enumerate(_list(m, "parents", path))]
    fitness = m.get("fitness")
    ratio = m.get("ratio")
    return {"id": _get(m, "id", str, path), "name": _get(m, "name", str, path),
            "state": _get(m, "state", str, path), "parents": parents,
            "kind": _opt_str(m, "kind", path), "operator": _opt_str(m, "operator", path),
            "domain": m.get("domain") if m.get("domain") is None else _get(m, "domain", str, path),
            "ratio": None if ratio is None else _num(m, "ratio", path),
            "fitness": None if fitness is None else _fitness(fitness, f"{path}.fitness")}


def _fitness(f: Any, path: str) -> dict:
    f = _obj(f, path)
    out: dict[str, Any] = {}
    for key in ("utility", "domain_ppl", "general_regression", "latency_token_ms_p50",
                "weight_bytes", "flops_per_token"):
        out[key] = None if f.get(key) is None else _num(f, key, path)
    out["gates"] = _opt_str(f, "gates", path)
    out["decision"] = _opt_str(f, "decision", path)
    return out


def _compute(c: Any, path: str) -> dict:
    c = _obj(c, path)
    coverage, ratio = _num(c, "coverage", path), _num(c, "ratio", path)
    value, cell = paper_table3(coverage, ratio)
    notes = c.get("notes") or []
    return {"coverage": coverage, "ratio": ratio, "saving_flops": _num(c, "saving_flops", path),
            "saving_time": None if c.get("saving_time") is None else _num(c, "saving_time", path),
            "paper_table3": value if c.get("paper_table3") is None else _num(c, "paper_table3", path),
            "paper_cell": c.get("paper_cell") or cell, "formula": _opt_str(c, "formula", path),
            "notes": [_str(n, f"{path}.notes[{i}]") for i, n in enumerate(_listed(notes, f"{path}.notes"))]}


def _pair(p: Any, path: str) -> dict:
    p = _obj(p, path)
    return {"served": _num(p, "served", path), "parent_only": _num(p, "parent_only", path)}


def _counts(obj: dict, key: str, path: str) -> dict[str, float]:
    d = _get(obj, key, dict, path)
    return {str(k): _num(d, k, f"{path}.{key}") for k in d}


def _obj(value: Any, path: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected an object, got {_kind(value)}")
    return value


def _get(obj: dict, key: str, kind: type, path: str) -> Any:
    if key not in obj:
        raise ValueError(f"{path}.{key}: missing")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path}.{key}: expected {kind.__name__}, got {_kind(value)}")
    return value


def _num(obj: dict, key: str, path: str) -> float:
    if key not in obj:
        raise ValueError(f"{path}.{key}: missing")
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{path}.{key}: expected a number, got {_kind(value)}")
    return float(value)


def _str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{path}: expected str, got {_kind(value)}")
    return value


def _opt_str(obj: dict, key: str, path: str) -> str:
    return "" if obj.get(key) is None else _get(obj, key, str, path)


def _list(obj: dict, key: str, path: str) -> list:
    return _get(obj, key, list, path)


def _listed(value: Any, path: str) -> list:
    if not isinstance(value, list):
        raise ValueError(f"{path}: expected list, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else f"{type(value).__name__} {str(value)[:40]!r}"
