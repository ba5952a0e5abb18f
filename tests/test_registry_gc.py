"""Bounded archives (issue 15): gc collects retired weights past the bound, keeps lineage and verify
whole, never collects what a rollback or an active child needs, and a re-breed restores the same id."""

from __future__ import annotations

import pytest
import torch
from registry_helpers import register_weights
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.cmg.recipe import RunOptions
from breedlab.governance.archive import collect, plan_gc, remove_collected
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe, adapter_finetune
from breedlab.registry import Registry, verify

TINY = AdapterFinetuneRecipe(domain="code", steps=3, batch_size=2, seq_len=32, warmup_steps=1, lora_rank=4,
                             lora_alpha=8, pool_tokens=1024, rehearsal_pool_tokens=256)
OPTIONS = RunOptions(progress=False, checkpoint_every=10, threads=1)


def problems(reg) -> list[str]:
    return [f.message for f in verify(reg.root) if f.level == "problem"]


def crowned_in_turn(reg, tmp_path, count: int):
    """``count`` children crowned one after another in niche code: all but the last end retired."""
    children = [register_weights(reg, tmp_path, name=f"c{i}", content=bytes([i]) * 2048, kind="child")
                for i in range(count)]
    for number, child in enumerate(children):
        reg.transition(child.id, "champion", event_type="promoted", actor="approver", reason="won",
                       data={"niche": "code"})
        if number:
            reg.transition(children[number - 1].id, "retired", event_type="retired", actor="approver",
                           reason="superseded", data={"niche": "code"})
    return children


def test_gc_collects_past_the_bound_keeps_the_rollback_target_and_verify_stays_green(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    c0, c1, c2, c3 = crowned_in_turn(reg, tmp_path, 4)
    dry = collect(reg, keep_retired=0, dry_run=True)
    assert [p.artifact for p in dry] == [c0.id, c1.id]  # c2 is what a rollback of c3 restores
    assert (c0.path / "model.safetensors").exists()  # a dry run changes nothing
    plans = collect(reg, keep_retired=0)
    assert [p.artifact for p in plans] == [c0.id, c1.id]
    assert not (c0.path / "model.safetensors").exists()
    assert not reg.objects.has(c0.manifest.files["model.safetensors"].sha256)
    assert (c0.path / "config.json").exists() and reg.get(c0.id).state == "retired"  # lineage stays whole
    assert problems(reg) == []
    assert any("collected" in f.message for f in verify(reg.root) if f.level == "note")
    assert plan_gc(reg, keep_retired=0) == []  # nothing left to collect
    kept = collect(Registry.open(tmp_path / "registry"), keep_retired=5)
    assert kept == []


def test_an_object_another_live_artifact_shares_is_kept(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    c0, *_ = crowned_in_turn(reg, tmp_path, 3)
    twin = register_weights(reg, tmp_path, name="twin", content=bytes([0]) * 2048, kind="child",
                            parents=[c0.id])  # same weight bytes as c0, different manifest
    assert plan_gc(reg, keep_retired=0) == []  # c0 is the parent of a live candidate
    reg.transition(twin.id, "rejected", event_type="rejected", actor="approver", reason="no")
    collect(reg, keep_retired=0)
    digest = c0.manifest.files["model.safetensors"].sha256
    assert not reg.objects.has(digest) and problems(reg) == []


def test_a_killed_gc_is_finished_by_the_next_one(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    c0, *_ = crowned_in_turn(reg, tmp_path, 3)
    plan = plan_gc(reg, keep_retired=0)[0]
    reg.record("collected", plan.artifact, actor="lifecycle", reason="gc", data={"files": plan.files,
                                                                                "bytes": plan.bytes})
    assert problems(reg) == []  # killed after the commit point, before any file went: still whole
    assert remove_collected(reg) == 1 and not (c0.path / "model.safetensors").exists()


def test_a_collected_child_re_breeds_from_its_recipe_to_the_same_id(tmp_path):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path / "home")
    reg = Registry.open(home.registry_dir)
    pico = build_pico_lab(reg, home.cache_dir)
    first = adapter_finetune(reg, home, pico.parent.id, TINY, OPTIONS).child
    reg.transition(first.id, "rejected", event_type="rejected", actor="approver", reason="not better")
    result = CliRunner().invoke(app, ["registry", "gc", "--keep-retired", "0", "--home", str(home.root)])
    assert result.exit_code == 0, result.output
    assert not (first.path / "model.safetensors").exists() and problems(reg) == []
    again = adapter_finetune(reg, home, pico.parent.id, TINY, OPTIONS).child
    assert again.id == first.id and (again.path / "model.safetensors").exists()
    assert [e.type for e in reg.events(first.id)][-3:] == ["collected", "restored", "breed-cost"]
    assert problems(reg) == []
    model, _ = load_model(again.path)
    assert sum(p.numel() for p in model.parameters()) > 0


def test_loading_a_collected_model_says_so(tmp_path):
    reg = Registry.open(tmp_path / "registry")
    c0, *_ = crowned_in_turn(reg, tmp_path, 3)
    collect(reg, keep_retired=0)
    with pytest.raises(FileNotFoundError, match="gc collected them"):
        load_model(reg.get(c0.id).path)
