"""The demo's timeline: what ``report.html`` draws, written as ``timeline.json`` beside it.

Windows come from ``steward.close_window``; events are read back from the
registry's log (the single source of truth), keeping the ones a person reads
a timeline for; models and their fitness come from the registry and the
evidence packets; the compute panel sets the measured saving next to the
paper's Table 3 at the same coverage and p.
"""

from __future__ import annotations

from breedlab.registry import Registry
from breedlab.registry.manifest import MODEL_KINDS

STORY_EVENTS = ("spawn-requested", "spawn-deferred", "spawn-no-op", "promoted", "demoted", "rejected", "retired",
                "rolled-back", "flagged", "revalidated", "merge-refused", "merge-skipped")


def story_events(registry: Registry, start: int, window: int) -> tuple[list[dict], int]:
    """Events appended since position ``start`` of the log, as timeline rows of ``window``, and the
    log's length now (the next window's ``start``): the log is read once per window."""
    events, _ = registry.log.read()
    rows = []
    for event in events[start:]:
        is_model = event.type == "registered" and registry.get(event.artifact).manifest.kind in MODEL_KINDS
        if event.type in STORY_EVENTS or is_model:
            rows.append({"window": window, "ts": event.ts, "type": event.type, "artifact": event.artifact,
                         "actor": event.actor, "reason": event.reason, "data": _small(event.data)})
    return rows, len(events)


def _small(data: dict) -> dict:
    """Event data without the bulky parts (the detector's full config, long lists)."""
    return {k: v for k, v in data.items() if k not in ("config", "weights") and not isinstance(v, (list, dict))
            or k in ("ci", "shares")}


def model_rows(registry: Registry, parent_id: str, fitness: dict) -> list[dict]:
    """Every model of the run with its state, lineage and (when measured) fitness."""
    rows = []
    for artifact in registry.find():
        manifest = artifact.manifest
        if manifest.kind not in MODEL_KINDS:
            continue
        f = fitness.get(artifact.id)
        rows.append({"id": artifact.id, "name": manifest.name, "kind": manifest.kind, "operator": manifest.operator,
                     "domain": manifest.recipe.get("domain"), "state": artifact.state,
                     "parents": list(manifest.parents), "ratio": manifest.recipe.get("ratio"),
                     "fitness": _fitness_row(f, registry, artifact.id) if f is not None else None})
    return sorted(rows, key=lambda r: (r["id"] != parent_id, r["name"]))


def _fitness_row(f, registry: Registry, model_id: str) -> dict:
    from breedlab.evaluation.gates import evaluate_gates, load_evaluation_config

    failed = [g.name for g in evaluate_gates(f, load_evaluation_config()) if not g.passed]
    return {"utility": f.utility, "domain_ppl": f.domain_ppl, "general_regression": f.general_regression,
            "latency_token_ms_p50": f.latency_token_ms_p50, "weight_bytes": f.weight_bytes,
            "flops_per_token": f.flops_per_token, "gates": "pass" if not failed else "FAIL " + ",".join(failed),
            "decision": _decision(registry, model_id)}


def _decision(registry: Registry, model_id: str) -> str:
    """The outcome of the newest evidence packet about ``model_id`` ("champion" for a packet's champion)."""
    for packet in registry.find(kind="packet"):
        recipe = packet.manifest.recipe
        if recipe.get("packet") == "evidence" and recipe.get("candidate") == model_id:
            return packet.manifest.metrics.get("outcome", "?")
    return "baseline"


def compute_panel(windows: list[dict], final_phase: str, ratio: float, child_flops_ratio: float | None) -> dict:
    """Measured saving over the final phase's windows, next to Table 3 at the same coverage and p."""
    from breedlab.report.table3 import paper_table3

    final = [w for w in windows if w["phase"] == final_phase]
    queries = sum(w["queries"] for w in final)
    on_children = sum(n for w in final for model, n in w["served"].items() if model != "parent")
    coverage = on_children / max(1, queries)
    served = sum(w["flops"]["served"] for w in final)
    parent_only = sum(w["flops"]["parent_only"] for w in final)
    ms_served = sum(w["latency_ms"]["served"] for w in final)
    ms_parent = sum(w["latency_ms"]["parent_only"] for w in final)
    table, cell = paper_table3(coverage, ratio)
    if ratio > 0.45:  # Table 3's columns are p = 0.05-0.30: a nearest cell would mislead
        table, cell = None, f"p = {ratio:.2f} is outside Table 3 (p 0.05-0.30)"
    notes = [f"measured over the final phase ({final_phase}): {queries} queries, {on_children} served by children",
             "served = the routed model's forward pass over each query; parent-only = the parent's forward pass "
             "over the same query, measured in the same run",
             f"p of the serving children (recipe ratio; 1.0 = parent-sized) = {ratio:.2f}; "
             "measured child/parent FLOPs per token = "
             + ("n/a" if child_flops_ratio is None else f"{child_flops_ratio:.3f}"),
             "shadow and revalidation passes are evidence, counted apart (flops.shadow), not in served"]
    return {"coverage": coverage, "ratio": ratio, "saving_flops": parent_only / served if served else 1.0,
            "saving_time": ms_parent / ms_served if ms_served else 1.0, "paper_table3": table, "paper_cell": cell,
            "formula": f"1/((1-c)+c*p) = {1.0 / ((1 - coverage) + coverage * ratio):.2f}x at c={coverage:.2f}, "
                       f"p={ratio}", "notes": notes}

