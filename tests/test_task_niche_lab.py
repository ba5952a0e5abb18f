"""An examples niche through the lab, on a pico parent: task suite, candidates bred on the examples,
utility from generated answers scored by the task, paired evidence, a release packet."""

from __future__ import annotations

import pytest
import torch
from rich.console import Console

from breedlab.data.niche import add_niche
from breedlab.evaluation.suites import load_suite
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.lab.run import LabConfig, run_lab
from breedlab.lab.setup import LAB_ACTOR, crown_parent
from breedlab.registry import Registry
from tests.niche_fixture import write_licence_examples

CONFIG = LabConfig(niche="licences", pico=True, ratio=0.5, distill_tokens=2048, finetune_tokens=1024, lm_cases=6,
                   task_cases=12, retention_cases=4, passage_tokens=32, max_new_tokens=6,
                   candidates=("adapter-finetune", "cmg"))


@pytest.fixture(scope="module")
def lab_run(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("task-lab"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    crown_parent(registry, pico.parent, actor=LAB_ACTOR)
    path = write_licence_examples(tmp_path_factory.mktemp("ex") / "licences.jsonl")
    add_niche(home, registry, "licences", examples=path, task="classify")
    console = Console(record=True, width=200)
    return registry, run_lab(registry, home, CONFIG, console), console


def test_the_utility_suite_is_the_task_suite_of_held_out_examples(lab_run):
    registry, result, _ = lab_run
    assert set(result.suites) == {"lm", "task", "retention"}
    suite = load_suite(registry, result.suites["task"])
    assert suite.scorer == "task-generate" and suite.settings["task"] == "classify"
    held_out = registry.find(kind="dataset", name="licences/examples/test")[0]
    assert suite.source_dataset == held_out.id and len(suite.cases) == 12


def test_candidates_breed_on_the_examples_and_are_judged_by_the_task(lab_run):
    registry, result, _ = lab_run
    examples = registry.find(kind="dataset", name="licences/examples/train")[0].id
    for candidate in result.candidates:
        assert examples in candidate.manifest.data
        assert candidate.manifest.recipe["examples_share"] == CONFIG.examples_share
    for fitness in result.fitness.values():
        assert fitness.utility is not None and len(fitness.utility_cases) == 12
        assert all(v in (0.0, 1.0) for v in fitness.utility_cases)  # classify: a normalised match per case
    assert set(result.evidence) == {c.id for c in result.candidates}
    assert result.release is not None
