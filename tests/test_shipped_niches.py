"""The four shipped example niches, at pico size: real text from this machine, real tasks."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.data.example_shards import iter_examples
from breedlab.data.shipped_niches import BUILDERS, TASKS, ship_niche
from breedlab.evaluation.task_metrics import score_task
from breedlab.home import Home
from breedlab.registry import Registry


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    home = Home.resolve(tmp_path_factory.mktemp("shipped"))
    registry = Registry.open(home.registry_dir)
    return home, registry, {name: ship_niche(home, registry, name, limit=30) for name in BUILDERS}


def _all(registry, name):
    return [e for split in ("train", "validation", "test")
            for e in iter_examples(registry.find(kind="dataset", name=f"{name}/examples/{split}")[0].path)]


def test_each_niche_registers_its_task_recipe_and_a_held_out_split(shipped):
    home, registry, reports = shipped
    for name, report in reports.items():
        assert report.task == TASKS[name] and 20 <= sum(report.examples.values()) <= 30, name
        assert report.examples["test"] >= 4
        test = registry.find(kind="dataset", name=f"{name}/examples/test")[0]
        origin = test.manifest.recipe["origin"]
        assert origin["builder"] == name and origin["limit"] == 30 and origin["seed"] == 0 and origin["sources"]
    again = ship_niche(home, registry, "licence-clause", limit=30)
    assert again.datasets == reports["licence-clause"].datasets  # same text, limit and seed: same ids


def test_the_examples_are_the_tasks_they_claim(shipped):
    _, registry, _ = shipped
    docstrings = _all(registry, "docstring")
    assert all("def " in e.input and e.output not in e.input for e in docstrings)  # the docstring is taken out
    licences = _all(registry, "licence-clause")
    families = {e.output for e in licences}
    assert len(families) >= 4 and all(f.isidentifier() or f.replace("-", "").isalnum() for f in families)
    grounded = _all(registry, "hpo-grounded")
    assert all(e.input.startswith("What is ") and len(e.sources) == 1 for e in grounded)
    scores = score_task("grounded", [e.output for e in grounded], [e.output for e in grounded],
                        sources=[list(e.sources) for e in grounded])
    assert scores.mean == 1.0  # the reference answer is its source's own words
    man = _all(registry, "man-summary")
    assert all(len(e.output) <= 120 and len(e.input) >= 80 for e in man)


def test_the_ship_command_refuses_an_unknown_niche(tmp_path):
    result = CliRunner().invoke(app, ["niche", "ship", "poetry", "--home", str(tmp_path)])
    assert result.exit_code != 0 and "no shipped niche 'poetry'" in result.output
