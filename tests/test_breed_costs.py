"""Equation 1 from measured costs (issue 15): every breed records CPU-seconds and FLOPs, summed over
the runs that resumed it, and ``registry costs`` adds up exactly what was recorded."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.governance.costs import breed_costs, equation_one
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.operators.table import get_operator
from breedlab.registry import Registry

TINY = {"steps": 4, "batch_size": 2, "seq_len": 32, "warmup_steps": 1, "lora_rank": 4, "lora_alpha": 8,
        "pool_tokens": 1024, "rehearsal_pool_tokens": 256}
OPTIONS = RunOptions(progress=False, checkpoint_every=1, threads=1)


@pytest.fixture(scope="module")
def bred(tmp_path_factory):
    from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe

    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("costs-home"))
    reg = Registry.open(home.registry_dir)
    pico = build_pico_lab(reg, home.cache_dir)
    adapter = get_operator("adapter-finetune")(reg, home, pico.parent.id, AdapterFinetuneRecipe(domain="code", **TINY),
                                               OPTIONS).child
    cmg, recipe = get_operator("cmg"), CMGRecipe(domain="code", ratio=0.5, profile_tokens=256, **TINY)
    first = cmg(reg, home, pico.parent.id, recipe, RunOptions(progress=False, checkpoint_every=1, threads=1,
                                                              stop_after=2))
    assert first.child is None  # interrupted after two steps: resumed below
    child = cmg(reg, home, pico.parent.id, recipe, OPTIONS).child
    return home, reg, adapter, child


def test_every_breed_records_its_cost_and_a_resumed_breed_counts_every_run(bred):
    _, reg, adapter, child = bred
    costs = {e.artifact: e.data for e in reg.events() if e.type == "breed-cost"}
    assert set(costs) == {adapter.id, child.id}
    assert costs[adapter.id]["runs"] == 1 and costs[child.id]["runs"] == 2
    for data in costs.values():
        assert data["cpu_seconds"] > 0 and data["flops"] > 0 and data["tokens"] > 0
    assert costs[child.id]["tokens"] == 4 * 2 * 32  # both runs' steps, each step once


def test_registry_costs_adds_up_exactly_what_was_recorded(bred):
    home, reg, adapter, child = bred
    recorded = {e.artifact: e.data for e in reg.events() if e.type == "breed-cost"}
    rows = {r.artifact: r for r in breed_costs(reg)}
    for artifact_id, data in recorded.items():
        assert rows[artifact_id].cpu_seconds == pytest.approx(data["cpu_seconds"])
        assert rows[artifact_id].flops == pytest.approx(data["flops"])
    eq = equation_one(list(rows.values()), c_train=100.0)
    assert eq.c_finetune == pytest.approx(recorded[adapter.id]["cpu_seconds"])
    assert eq.c_child == pytest.approx(recorded[child.id]["cpu_seconds"]) and 0.3 < eq.p < 0.8
    assert eq.genesis(1, measured=True) == pytest.approx(100.0 + eq.c_child)
    assert eq.k_star_equation == pytest.approx(100.0 / ((1 - eq.p) * eq.c_finetune))
    result = CliRunner().invoke(app, ["registry", "costs", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    assert "K*, Equation 1" in result.output and f"{recorded[adapter.id]['cpu_seconds']:,.1f}" in result.output
