"""``breedlab search``: Ray Tune over a niche's recipe fields, judged on validation, evidenced on test once.

    trials     <- Tune samples the space (seeded); each trial is a resumable breed in a home of its own,
                  seeded like a population's breed: no test split, no frozen suite
    curve      <- every ``report_every`` steps the trial reads its NLL on ``<niche>/validation``
    stopping   <- ASHA stops the trials whose curve is behind at each rung
    winner     <- the finished trial with the lowest final validation NLL
    record     <- the head registers the ``search`` artifact (every trial, its curve and its verdict)
                  and the winner, whose data names the search (its lineage shows where its recipe came from)
    evidence   <- the lab's frozen suites judge the winner once, after the search: packets and a release

A trial's last report is sent only after its child is registered in its home, so ASHA's stop at the
final rung cannot cut a winner off before its files exist.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from breedlab.cluster.board import call
from breedlab.cluster.population import PopulationResult, breed_spec, judge_niche, measure_population
from breedlab.cluster.runner import ClusterOptions, LiveTable, new_board, ray_session
from breedlab.cluster.search_space import SearchSpace, max_steps, tune_space
from breedlab.cluster.search_trial import SHIPMENT_FILE, run_trial
from breedlab.cluster.transfer import register_records, replay_events
from breedlab.home import Home
from breedlab.lab.run import LabResult, acting_as
from breedlab.registry import Artifact, Registry, RegistryError
from breedlab.registry.canonical import sha256_json
from breedlab.registry.folders import CARD_NAME

METRIC = "val_nll"


@dataclass
class SearchResult:
    search: Artifact
    winner: Artifact
    trials: list[dict[str, Any]] = field(default_factory=list)
    lab: LabResult | None = None


def run_search(registry: Registry, home: Home, niche: str, space: SearchSpace, config_for, options: ClusterOptions,
               console: Console | None = None) -> SearchResult:
    from breedlab.governance.config import load_governance
    from breedlab.lab.steps import champion_of

    console, governance = console or Console(), load_governance(home.root)
    champion = champion_of(registry, niche)
    if not registry.find(kind="dataset", name=f"{niche}/validation"):
        raise RegistryError(f"a search is judged on {niche}/validation and there is none: a test split is never "
                            "a substitute (it is the evidence that judges the winner)")
    template = breed_spec(registry, home, niche, champion, space.candidate("template", {}), governance.breeder,
                          options, checkpoint_every=max(1, space.report_every))
    key = sha256_json({"search": space.to_dict(), "source": template.source, "niche": niche})
    storage = home.root / "ray-work" / f"search-{key[:16]}"
    steps = max_steps(space, niche)
    if space.scheduler.grace_steps > steps:
        raise ValueError(f"scheduler.grace_steps {space.scheduler.grace_steps} is more than the longest trial's "
                         f"{steps} steps")
    with ray_session(replace(options, ray=options.ray or "auto")):
        board = new_board(replace(options, ray="auto"))
        with LiveTable(console, board, f"search {niche}"):
            grid = fit(space, niche, template, storage, options, board, steps)
            trials = trial_rows(grid)
            for trial in trials:  # ASHA's stops end a trial's actor, not its row: say so in the table
                if trial["key"] and not trial["finished"]:
                    call(board, "finish", trial["key"], "stopped" if not trial["error"] else "failed",
                         trial["error"] or f"stopped by ASHA at step {trial['steps']}")
    finished = [t for t in trials if t["finished"] and t["final_val_nll"] is not None]
    if not finished:
        raise RegistryError(f"no trial of the search finished: {[t['error'] for t in trials]}")
    best = min(finished, key=lambda t: t["final_val_nll"])
    with acting_as(registry, governance.breeder):
        search, winner = register_search(registry, niche, space, template, trials, best, governance.breeder,
                                         storage / best["key"][:16] / SHIPMENT_FILE)
    shutil.rmtree(storage, ignore_errors=True)
    result = SearchResult(search, winner, trials)
    result.lab = judge_winner(registry, home, niche, champion, winner, config_for, options, console)
    return result


def fit(space: SearchSpace, niche: str, template, storage: Path, options: ClusterOptions, board, steps: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import BasicVariantGenerator

    trainable = tune.with_resources(tune.with_parameters(run_trial, template=template, space=space.to_dict(),
                                                         niche=niche, board=board, storage=str(storage)),
                                    {"cpu": options.cpus_per_task})
    scheduler = ASHAScheduler(time_attr="step", max_t=steps,
                              grace_period=space.scheduler.grace_steps,
                              reduction_factor=space.scheduler.reduction_factor)
    tuner = tune.Tuner(trainable, param_space=tune_space(space), tune_config=tune.TuneConfig(
        metric=METRIC, mode="min", scheduler=scheduler, num_samples=space.trials,
        search_alg=BasicVariantGenerator(random_state=space.seed, max_concurrent=options.max_concurrent or 0)),
        run_config=tune.RunConfig(name="tune", storage_path=str(storage), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=options.max_retries)))
    return tuner.fit()


def trial_rows(grid) -> list[dict[str, Any]]:
    """Every trial in the order Tune made them: its recipe fields, its validation curve, how it ended."""
    rows = []
    for number, result in enumerate(sorted(grid, key=lambda r: r.path or ""), 1):
        history = result.metrics_dataframe
        curve = [] if history is None or METRIC not in history else \
            [[int(s), float(v)] for s, v in zip(history["step"], history[METRIC])]
        metrics = result.metrics or {}
        rows.append({"trial": number, "config": dict(result.config or {}), "curve": curve,
                     "steps": curve[-1][0] if curve else 0, "finished": bool(metrics.get("finished")),
                     "final_val_nll": metrics.get(METRIC) if metrics.get("finished") else None,
                     "key": metrics.get("key"), "error": str(result.error) if result.error else None})
    return rows


def register_search(registry: Registry, niche: str, space: SearchSpace, template, trials: list[dict], best: dict,
                    actor: str, shipment_file: Path) -> tuple[Artifact, Artifact]:
    """The search artifact (every trial), then the winner (its trial's shipment) with the search in its data."""
    shipment = json.loads(shipment_file.read_text())
    child = next(r for r in shipment["records"] if r["id"] == shipment["child"])
    inputs = [r for r in shipment["records"] if r["id"] != child["id"]]
    register_records(registry, inputs, shipment["objects_dir"], actor=actor)  # profiles, teacher caches: ids checked
    validation = [r["id"] for r in template.records if r["kind"] == "dataset" and r["name"] == f"{niche}/validation"]
    data = sorted({*validation, *(ref for ref in child["data"] if registry.get(ref).manifest.kind == "dataset")})
    search = _register_trials(registry, niche, space, template, trials, best, child["id"], data, actor)
    # the winner's own files, its data naming the search; its card is rendered again to say so
    files = {rel: entry for rel, entry in child["files"].items() if rel != CARD_NAME}
    winner = register_records(registry, [{**child, "data": [*child["data"], search.id], "files": files}],
                              shipment["objects_dir"], actor=actor, expect_ids=False)[0]
    replay_events(registry, [{**e, "artifact": winner.id} for e in shipment["events"] if e["artifact"] == child["id"]],
                  actor=actor)
    return search, winner


def _register_trials(registry: Registry, niche: str, space: SearchSpace, template, trials: list[dict], best: dict,
                     child_id: str, data: list[str], actor: str) -> Artifact:
    rows = [{k: v for k, v in t.items() if k != "key"} for t in trials]  # keys name scratch homes, gone after
    body = {"niche": niche, "objective": f"{METRIC} on {niche}/validation (lower is better)", "trials": rows,
            "winner": {"trial": best["trial"], "child_as_bred": child_id, "config": best["config"]}}
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "trials.json"
        path.write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
        return registry.register(
            "search", f"search/{niche}", {"trials.json": path}, operator="ray-tune-asha",
            recipe={"space": space.to_dict(), "source": template.source, "objective": METRIC},
            parents=[template.source], data=data, actor=actor,
            metrics={"trials": len(trials), "finished": sum(t["finished"] for t in trials),
                     "stopped_early": sum(not t["finished"] and not t["error"] for t in trials),
                     "winner_trial": best["trial"], "winner_val_nll": best["final_val_nll"],
                     "trial_steps": sum(t["steps"] for t in trials)})


def judge_winner(registry: Registry, home: Home, niche: str, champion: Artifact, winner: Artifact, config_for,
                 options: ClusterOptions, console: Console) -> LabResult:
    """The frozen suites (held-out test split) judge the winner, once, as the evaluator."""
    from breedlab.governance.config import load_governance
    from breedlab.lab.steps import build_suites

    governance = load_governance(home.root)
    with acting_as(registry, governance.evaluator):
        suites = {niche: build_suites(registry, champion, config_for(niche))}
    in_process = replace(options, ray=None)
    fitness = measure_population(registry, home, {niche: champion}, suites, {niche: [winner]}, config_for,
                                 in_process, new_board(in_process), governance.evaluator, console, PopulationResult())
    with acting_as(registry, governance.evaluator):
        return judge_niche(registry, home, niche, champion, suites[niche], [winner], fitness[niche],
                           config_for(niche), console)
