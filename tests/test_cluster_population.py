"""Population breeding on a local Ray cluster: the same children as sequential breeds, retries that
resume, one writer, and evidence from the head."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch
from rich.console import Console

from breedlab.cluster.board import snapshot_of
from breedlab.cluster.population import breed_spec, import_shipment, run_population
from breedlab.cluster.recipes import CandidateRecipe
from breedlab.cluster.runner import ClusterOptions, new_board, run_tasks
from breedlab.cluster.tasks import breed_seed, breed_task
from breedlab.cmg.recipe import RunOptions
from breedlab.evaluation.packets import load_packet
from breedlab.operators.table import get_operator
from breedlab.registry import RegistryError, verify
from breedlab.registry.lineage import full_precision
from tests.cluster_fixture import RECIPES, build_pristine, copy_home, local_ray, pico_config  # noqa: F401

RAY = ClusterOptions(ray="auto", cpus_per_task=1)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    torch.set_num_threads(1)
    return build_pristine(tmp_path_factory.mktemp("pristine") / "home")


@pytest.fixture(scope="module")
def sequential_ids(pristine, tmp_path_factory):
    """Each recipe bred one after another in this process, straight through the operator table."""
    home, registry = copy_home(pristine, tmp_path_factory.mktemp("sequential") / "home")
    parent = full_precision(registry, registry.find(kind="parent")[0])
    ids = {}
    for candidate in RECIPES:
        outcome = get_operator(candidate.operator)(registry, home, parent.id, candidate.recipe_for("code"),
                                                   RunOptions(progress=False))
        ids[candidate.name] = outcome.child.id
    return ids


@pytest.fixture(scope="module")
def ray_population(pristine, sequential_ids, tmp_path_factory, local_ray):  # noqa: F811
    home, registry = copy_home(pristine, tmp_path_factory.mktemp("population") / "home")
    console = Console(record=True, width=200)
    result = run_population(registry, home, ["code"], lambda niche: RECIPES, pico_config, RAY, console)
    return registry, result, console


def test_a_population_on_ray_breeds_exactly_the_children_of_sequential_breeds(ray_population, sequential_ids):
    registry, result, _ = ray_population
    assert not result.failed
    assert {label.split("/")[1]: task["child"] for label, task in result.tasks.items()} == sequential_ids
    for child_id in sequential_ids.values():  # registered by the head, as the breeder, with the breed's cost
        events = registry.events(child_id)
        assert events[0].type == "registered" and events[0].actor == "breeder"
        assert any(e.type == "breed-cost" for e in events)


def test_the_population_is_measured_as_the_evaluator_and_ends_in_one_release_packet(ray_population, sequential_ids):
    registry, result, console = ray_population
    lab = result.labs["code"]
    assert {c.id for c in lab.candidates} == set(sequential_ids.values())
    release = load_packet(registry, lab.release.id)
    assert release["rollback_target"] == lab.champion.id and set(release["evidence"]) == set(lab.evidence.values())
    assert registry.find(kind="packet", name="release/code") and len(lab.evidence) == 3
    for packet_id in lab.evidence.values():
        assert registry.events(packet_id)[0].actor == "evaluator"
    assert all(lab.fitness[c.id].utility is not None and lab.fitness[c.id].general_ppl for c in lab.candidates)
    text = console.export_text()
    assert "population: breeding" in text and "finished (attempt 1)" in text
    assert not [f for f in verify(registry.root) if f.level == "error"]
    assert not (registry.root.parent / "ray-work").exists() or not any((registry.root.parent / "ray-work").iterdir())


LONG = CandidateRecipe("cmg-long", "cmg", "compact", {**RECIPES[1].fields, "tokens": 65536})
"""256 steps: long enough that a kill seen through the board (one report a second) lands mid-training."""


def test_a_worker_killed_mid_breed_is_retried_and_breeds_the_same_child(pristine, tmp_path, local_ray):  # noqa: F811
    home, registry = copy_home(pristine, tmp_path / "home")
    parent = registry.find(kind="parent")[0]
    reference = get_operator("cmg")(*copy_home(pristine, tmp_path / "reference")[::-1], parent.id,
                                    LONG.recipe_for("code"), RunOptions(progress=False)).child.id
    spec = breed_spec(registry, home, "code", parent, LONG, "breeder", RAY, checkpoint_every=1)
    board = new_board(RAY)
    killed = []

    def kill_mid_training() -> None:  # from outside, as an OOM killer or a lost node would
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            row = snapshot_of(board).get(spec.key, {})
            if row.get("attempts") == 1 and "distilling" in row.get("phase", "") and 0 < row["done"] < row["total"]:
                os.kill(row["pid"], signal.SIGKILL)
                killed.append(row["done"])
            time.sleep(0.05)

    watcher = threading.Thread(target=kill_mid_training)
    watcher.start()
    outcome = run_tasks(breed_task, [spec], RAY, board, title="kill drill", console=Console(quiet=True))[spec.key]
    watcher.join()
    assert killed, "the watcher never saw the breed training"
    assert not isinstance(outcome, Exception), outcome
    assert outcome["attempt"] == 2 and snapshot_of(board)[spec.key]["attempts"] == 2
    assert outcome["tokens"] < 65536  # the retry resumed from a checkpoint: it trained only what was left
    import_shipment(registry, outcome, "breeder")
    assert outcome["child"] == reference


def test_a_worker_needs_nothing_of_the_heads_registry_but_its_objects(pristine, sequential_ids, tmp_path):
    """By construction: the spec names no path of the head's registry but the read-only objects folder,
    and a task runs with the head's registry moved away (only a copy of its objects left to read)."""
    import shutil

    home, registry = copy_home(pristine, tmp_path / "home")
    parent = registry.find(kind="parent")[0]
    spec = breed_spec(registry, home, "code", parent, RECIPES[1], "breeder", ClusterOptions())
    mentions = [v for v in _strings(spec.__dict__) if str(registry.root) in v]
    assert mentions == [str(registry.objects.root)]
    log = (registry.root / "events.jsonl").read_bytes()
    shutil.copytree(registry.objects.root, tmp_path / "objects-only")
    hidden = registry.root.rename(tmp_path / "registry-away")
    try:
        outcome = breed_task(spec.__class__(**{**spec.__dict__, "objects_dir": str(tmp_path / "objects-only")}))
    finally:
        hidden.rename(registry.root)
    assert (registry.root / "events.jsonl").read_bytes() == log  # the worker wrote nothing the head has
    assert outcome["child"] == sequential_ids["cmg-p70"]


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def test_a_breed_seed_holds_no_test_split_and_no_suite(pristine, tmp_path):
    _, registry = copy_home(pristine, tmp_path / "home")
    seed = breed_seed(registry, registry.find(kind="parent")[0], "code")
    names = {a.manifest.name for a in seed}
    assert {"code/train", "code/validation", "general/train"} <= names
    assert not [n for n in names if n.endswith("/test")] and all(a.manifest.kind != "eval-suite" for a in seed)


def test_the_head_refuses_a_shipment_whose_files_do_not_match_and_registers_nothing(pristine, tmp_path):
    from breedlab.cluster.transfer import records_of, register_records

    _, registry = copy_home(pristine, tmp_path / "home")
    record = records_of(registry.find(kind="dataset", name="code/train"))[0]
    rel = next(r for r in record["files"] if r != "README.md")
    forged = {**record, "id": "f" * 64, "files": {**record["files"], rel: {"sha256": "0" * 64, "size": 1}}}
    before = len(registry.events())
    with pytest.raises(RegistryError, match="does not hash"):
        register_records(registry, [forged], registry.objects.root)
    assert len(registry.events()) == before


def test_two_entries_breeding_the_same_child_are_refused_before_anything_runs(pristine, tmp_path):
    from breedlab.cluster.population import breed_specs
    from breedlab.cluster.recipes import CandidateRecipe

    home, registry = copy_home(pristine, tmp_path / "home")
    twin = CandidateRecipe("twin", RECIPES[1].operator, RECIPES[1].preset, dict(RECIPES[1].fields))
    parent = registry.find(kind="parent")[0]
    with pytest.raises(ValueError, match="same recipe"):
        breed_specs(registry, home, ["code"], {"code": parent}, lambda niche: [RECIPES[1], twin], "breeder",
                    ClusterOptions())


def test_a_shipment_imported_twice_counts_its_cost_once(ray_population, sequential_ids):
    from breedlab.cluster.transfer import replay_events

    registry, _, _ = ray_population
    child = sequential_ids["cmg-p70"]
    cost = next(e for e in registry.events(child) if e.type == "breed-cost")
    replay_events(registry, [{"type": cost.type, "artifact": child, "reason": cost.reason, "data": cost.data}],
                  actor="breeder")
    assert sum(e.type == "breed-cost" for e in registry.events(child)) == 1


def test_the_cli_breeds_a_recipes_file_in_process_and_refuses_a_bad_one(pristine, tmp_path):
    import yaml
    from typer.testing import CliRunner

    from breedlab.cli.app import app

    home, registry = copy_home(pristine, tmp_path / "home")
    (home.root / "lab.yaml").write_text(yaml.safe_dump({"pico": True, "lm_cases": 8, "cloze_cases": 12,
                                                        "retention_cases": 6, "passage_tokens": 32, "engine": ""}))
    candidate = RECIPES[1]
    recipes = tmp_path / "recipes.yaml"
    recipes.write_text(yaml.safe_dump({"candidates": [{"name": candidate.name, "operator": candidate.operator,
                                                       "preset": candidate.preset, **candidate.fields}]}))
    done = CliRunner().invoke(app, ["population", "--niche", "code", "--recipes", str(recipes),
                                    "--home", str(home.root)], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "code/cmg-p70: child" in done.output and registry.find(kind="packet", name="release/code")
    recipes.write_text(yaml.safe_dump({"candidates": [{"name": "odd", "operator": "cmg", "widest": 3}]}))
    refused = CliRunner().invoke(app, ["population", "--niche", "code", "--recipes", str(recipes),
                                       "--home", str(home.root)])
    assert refused.exit_code == 1 and "candidate 1 (odd)" in refused.output and "widest" in refused.output
