"""A recipe search with Ray Tune on a pico lab: ASHA stops trials on the validation curve, the winner is
chosen on validation alone, and only the frozen test suites give its evidence."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from rich.console import Console

from breedlab.cluster.runner import ClusterOptions
from breedlab.cluster.search import run_search
from breedlab.cluster.search_space import load_space
from breedlab.evaluation.packets import load_packet
from breedlab.registry import RegistryError, verify
from breedlab.registry.lineage import ancestry_tree
from tests.cluster_fixture import CMG_SMALL, build_pristine, copy_home, local_ray, pico_config  # noqa: F401

SPACE = {"operator": "cmg", "preset": "compact",
         "fixed": {**CMG_SMALL, "tokens": 2048, "pool_tokens": 2048},
         "space": {"ratio": {"choice": [0.5, 0.6, 0.7]}, "lr": {"loguniform": [1.0e-5, 3.0e-3]}},
         "trials": 6, "seed": 0, "report_every": 1, "validation_tokens": 1024,
         "scheduler": {"grace_steps": 2, "reduction_factor": 2}}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    torch.set_num_threads(1)
    return build_pristine(tmp_path_factory.mktemp("pristine") / "home")


@pytest.fixture(scope="module")
def searched(pristine, tmp_path_factory, local_ray):  # noqa: F811
    home, registry = copy_home(pristine, tmp_path_factory.mktemp("search") / "home")
    path = home.root / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    options = ClusterOptions(ray="auto", cpus_per_task=1, max_concurrent=1)  # one at a time: ASHA's order is fixed
    console = Console(record=True, width=200)
    return registry, run_search(registry, home, "code", load_space(path), pico_config, options, console), console


def test_a_search_of_six_trials_stops_some_early_and_picks_its_winner_on_validation(searched):
    registry, result, console = searched
    trials = json.loads((result.search.path / "trials.json").read_text())["trials"]
    assert len(trials) == 6 and all(t["curve"] for t in trials)
    stopped = [t for t in trials if not t["finished"]]
    assert stopped and all(t["steps"] < 8 for t in stopped), "ASHA stopped no trial"
    finished = [t for t in trials if t["finished"]]
    best = min(finished, key=lambda t: t["final_val_nll"])
    assert result.search.manifest.metrics["winner_trial"] == best["trial"]
    assert result.winner.manifest.recipe["ratio"] == best["config"]["ratio"]
    assert abs(result.winner.manifest.recipe["lr"] - best["config"]["lr"]) < 1e-12
    assert "search code" in console.export_text()


def test_the_search_reads_validation_only_and_the_frozen_test_suites_judge_the_winner(searched):
    registry, result, _ = searched
    read = {registry.get(ref).manifest.name for ref in result.search.manifest.data}
    assert "code/validation" in read and not [name for name in read if name.endswith("/test")]
    packet = load_packet(registry, result.lab.evidence[result.winner.id])
    suites = packet["fitness"]["candidate"]["suites"]
    sources = {registry.get(ref).manifest.name for suite in suites.values() for ref in registry.get(suite).manifest.data}
    assert sources and all(name.endswith("/test") for name in sources)  # evidence from held-out test splits only
    assert not set(result.search.manifest.data) & {ref for s in suites.values() for ref in registry.get(s).manifest.data}
    assert registry.events(packet_id := result.lab.evidence[result.winner.id])[0].actor == "evaluator" and packet_id


def test_the_winners_lineage_names_the_search_and_its_files_are_the_trials(searched):
    registry, result, _ = searched
    assert result.search.id in result.winner.manifest.data
    tree = Console(record=True, width=200)
    tree.print(ancestry_tree(registry, result.winner.id))
    assert "search/code" in tree.export_text()
    assert not [f for f in verify(registry.root) if f.level == "error"]


def test_a_search_without_a_validation_split_refuses_to_fall_back_on_test(pristine, tmp_path):
    home, registry = copy_home(pristine, tmp_path / "home")
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(SPACE))
    with pytest.raises(RegistryError, match="validation and there is none"):
        run_search(registry, home, "medical", load_space(path), pico_config, ClusterOptions(ray="auto"))


@pytest.mark.parametrize("change, message", [
    ({"space": {"ratio": {"choice": [0.5, 7]}}}, "space.ratio = 7"),
    ({"space": {"no_such_field": {"choice": [1]}}}, "no_such_field"),
    ({"space": {"lr": {"loguniform": [0, 1]}}}, "low > 0"),
    ({"space": {"lr": {"normal": [0, 1]}}}, "must be one of"),
    ({"fixed": {"ratio": 0.5}}, "both fixed and searched"),
    ({"trials": 0}, "positive"),
])
def test_a_bad_search_space_is_refused_with_the_field_named(tmp_path, change, message):
    space = {**SPACE, **change}
    if "space" in change and "ratio" not in change["space"]:
        space["space"] = {**change["space"]}
    if "fixed" in change:
        space["fixed"] = {**SPACE["fixed"], **change["fixed"]}
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space))
    with pytest.raises(ValueError, match=message):
        load_space(path)
