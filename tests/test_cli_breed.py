"""`breedlab breed` from the command line, on a pico lab in a throw-away home."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.registry import Registry

PICO_ARGS = ["--domain", "code", "--ratio", "0.5", "--steps", "4", "--threads", "1", "--preset", "paper"]


@pytest.fixture(scope="module")
def pico_home(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("cli-home"))
    build_pico_lab(Registry.open(home.registry_dir), home.cache_dir)
    return home


def run(*args):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_breed_registers_a_child_and_a_rerun_reuses_it(pico_home):
    args = ["breed", *PICO_ARGS, "--home", str(pico_home.root)]
    first = run(*args)
    assert first.exit_code == 0, first.output
    assert "bred code-p50-profiled" in first.output and "trainable fraction" in first.output
    again = run(*args)
    assert again.exit_code == 0 and "already bred" in again.output


def test_breed_from_a_child_makes_a_grandchild(pico_home):
    registry = Registry.open(pico_home.registry_dir)
    child = registry.find(kind="child")[0]
    result = run("breed", *PICO_ARGS, "--parent", child.id[:12], "--home", str(pico_home.root))
    assert result.exit_code == 0, result.output
    lineage = run("registry", "lineage", registry.find(kind="child")[0].id, "--home", str(pico_home.root))
    assert child.id[:12] in lineage.output and "pico-parent" in lineage.output


def test_breed_defaults_to_the_compact_preset_and_refuses_a_bad_strategy(pico_home):
    args = ["--domain", "code", "--steps", "2", "--threads", "1", "--home", str(pico_home.root)]
    result = run("breed", *args, "--ratio", "0.5", "--domain-head", "0.9")
    assert result.exit_code == 0, result.output
    assert "bred code-p50-mixed-full" in result.output
    bad = CliRunner().invoke(app, ["breed", *args, "--strategy", "widest"])
    assert bad.exit_code != 0 and "unknown strategy" in bad.output


def test_breed_without_data_is_a_clear_error(tmp_path):
    result = CliRunner().invoke(app, ["breed", *PICO_ARGS, "--home", str(tmp_path)])
    assert result.exit_code != 0 and "parent" in result.output


def test_lab_refuses_an_unknown_candidate_before_fetching_anything(tmp_path):
    result = CliRunner().invoke(app, ["lab", "--niche", "code", "--candidates", "cmg,cmg-int4",
                                      "--home", str(tmp_path / "home")])
    assert result.exit_code == 1 and "unknown lab candidates ['cmg-int4']" in result.output
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.safetensors"))


def test_operate_runs_any_registered_operator_by_its_recipe_class(pico_home):
    """Prune, then heal the pruned child separately: two operators, one generic command."""
    home = ["--home", str(pico_home.root), "--threads", "1"]
    pruned = run("operate", "prune", "--set", "domain=code", "--set", "ratio=0.5", "--set", "profile_tokens=256",
                 "--set", "seq_len=32", *home)
    assert pruned.exit_code == 0, pruned.output
    assert "registered child code-p50-profiled-pruned" in pruned.output
    child = Registry.open(pico_home.registry_dir).find(kind="child", name="code-p50-profiled-pruned")[0]
    healed = run("operate", "adapter-finetune", "--input", child.id, "--set", "domain=code", "--set", "steps=2",
                 "--set", "batch_size=2", "--set", "seq_len=32", "--set", "pool_tokens=512",
                 "--set", "rehearsal_pool_tokens=256", *home)
    assert healed.exit_code == 0, healed.output
    adapter = Registry.open(pico_home.registry_dir).find(kind="adapter")[0]
    assert adapter.manifest.parents == (child.id,)
    bad = CliRunner().invoke(app, ["operate", "prune", "--set", "domain=code", "--set", "ratios=0.5", *home])
    assert bad.exit_code != 0 and "ratios" in bad.output
    listing = run("operate", "--list")
    assert "prune (PruneRecipe)" in listing.output and "merge-distill" in listing.output
