"""The CMG end to end on a pico lab: the acceptance list of the CMG issue."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from breedlab.cmg.inputs import load_frozen
from breedlab.cmg.lora import prepare_trainable, trainable_parameters
from breedlab.cmg.recipe import CMGRecipe, RunOptions
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model, weights_digest
from breedlab.operators.cmg import breed_child
from breedlab.registry import Registry, verify
from breedlab.registry.lineage import generations

QUICK = CMGRecipe(domain="code", ratio=0.5, steps=40, batch_size=4, seq_len=64, lr=5e-3, warmup_steps=4,
                  lora_rank=8, lora_alpha=16, profile_tokens=1024, pool_tokens=4096,
                  rehearsal_pool_tokens=1024)
OPTIONS = RunOptions(progress=False, checkpoint_every=10)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("lab"))
    registry = Registry.open(home.registry_dir)
    return home, registry, build_pico_lab(registry, home.cache_dir)


@pytest.fixture(scope="module")
def bred(lab):
    home, registry, pico = lab
    parent_model, _ = load_frozen(pico.parent)
    before = weights_digest(parent_model)
    outcome = breed_child(registry, home, pico.parent.id, QUICK, OPTIONS)
    return outcome, before


def test_parent_weights_are_identical_before_and_after_breeding(lab, bred):
    _, registry, pico = lab
    outcome, before = bred
    reloaded, _ = load_frozen(registry.get(pico.parent.id))  # re-hashes every file against the manifest
    assert weights_digest(reloaded) == before
    assert outcome.child.manifest.metrics["parent_unchanged"] is True


def test_child_loads_with_plain_transformers_and_keeps_its_adapter(bred):
    outcome, _ = bred
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(outcome.child.path)
    assert sum(p.numel() for p in model.parameters()) == outcome.child.manifest.metrics["parameters"]
    files = outcome.child.manifest.files
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json",
            "training_curve.json", "selection.json", "model.safetensors"} <= set(files)


def test_adapter_config_is_independent_of_the_process_hash_seed(bred):
    import json

    config = json.loads((bred[0].child.path / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"] == sorted(config["target_modules"])  # PEFT writes a set otherwise
    assert config["base_model_name_or_path"].startswith("breedlab:")


def test_manifest_records_the_full_recipe(lab, bred):
    _, _, pico = lab
    recipe = bred[0].child.manifest.recipe
    for key in ("ratio", "strategy", "temperature", "alpha_ce", "alpha_kd", "rehearsal_weight", "steps",
                "seed", "plan", "selection_sha256", "inputs", "parent", "loss"):
        assert key in recipe, key
    assert recipe["temperature"] == 4.0 and recipe["rehearsal_weight"] == 0.10
    assert recipe["parent"] == pico.parent.id and recipe["inputs"]["profile"]
    assert bred[0].child.manifest.parents == (pico.parent.id,)


def test_only_lora_parameters_train_and_the_fraction_is_reported(lab, bred):
    metrics = bred[0].child.manifest.metrics
    assert 0 < metrics["trainable_fraction"] < 0.5
    student, _ = load_model(bred[0].child.path)
    model = prepare_trainable(student, QUICK)
    names = list(trainable_parameters(model))
    assert names and all("lora_" in name for name in names)
    loss = model(input_ids=torch.tensor([[1, 5, 9, 13]])).logits.sum()
    loss.backward()
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert set(with_grad) == set(names)


def test_rehearsal_is_five_percent_of_training_tokens(bred):
    metrics = bred[0].child.manifest.metrics
    assert abs(metrics["rehearsal_share"] - 0.05) <= 0.01
    assert metrics["rehearsal_tokens"] > 0


def test_loss_falls_over_training(bred):
    curve = [e["loss"] for e in bred[0].result.curve if e["stream"] == "domain"]
    assert sum(curve[-5:]) / 5 < 0.9 * sum(curve[:5]) / 5


def test_same_seed_same_data_gives_the_identical_child(lab, bred, tmp_path):
    home, registry, pico = lab
    other_home = Home.resolve(tmp_path / "twin")
    twin_registry = Registry.open(other_home.registry_dir)
    twin = build_pico_lab(twin_registry, other_home.cache_dir)
    assert twin.parent.id == pico.parent.id
    outcome = breed_child(twin_registry, other_home, twin.parent.id, QUICK, OPTIONS)
    assert outcome.child.id == bred[0].child.id


def test_an_interrupted_breed_resumes_to_the_same_child(lab, bred):
    home, registry, pico = lab
    recipe = replace(QUICK, seed=1)
    first = breed_child(registry, home, pico.parent.id, recipe, replace(OPTIONS, stop_after=15))
    assert first.child is None and first.result.interrupted and first.result.steps_done == 15
    resumed = breed_child(registry, home, pico.parent.id, recipe, OPTIONS)
    assert resumed.child is not None and resumed.result.steps_done == recipe.total_steps
    fresh_home = Home.resolve(home.root.parent / "fresh")
    fresh_registry = Registry.open(fresh_home.registry_dir)
    fresh = build_pico_lab(fresh_registry, fresh_home.cache_dir)
    uninterrupted = breed_child(fresh_registry, fresh_home, fresh.parent.id, recipe, OPTIONS)
    assert uninterrupted.child.id == resumed.child.id


def test_a_sigkilled_breed_resumes_and_finishes(lab, tmp_path):
    home, registry, pico = lab
    script = Path(__file__).with_name("cmg_worker.py")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    worker = subprocess.Popen([sys.executable, str(script), str(home.root), pico.parent.id],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    breeds = home.cache_dir / "breeds"
    deadline = time.monotonic() + 240
    while not list(breeds.glob("*/latest")) and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.2)
    assert worker.poll() is None, worker.stderr.read().decode()[-2000:]
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert [f for f in verify(registry.root) if f.level == "problem"] == []
    from cmg_worker import KILLED_RECIPE

    outcome = breed_child(registry, home, pico.parent.id, KILLED_RECIPE, OPTIONS)
    assert outcome.child is not None and outcome.result.steps_done == KILLED_RECIPE.total_steps
    assert outcome.result.run_tokens < outcome.result.tokens  # it resumed rather than restarting


def test_a_grandchild_has_three_generations_and_verifies(lab, bred):
    home, registry, _ = lab
    child = bred[0].child
    grandchild = breed_child(registry, home, child.id, replace(QUICK, ratio=0.5, steps=20), OPTIONS).child
    assert grandchild.manifest.parents == (child.id,)
    assert generations(registry, grandchild.id) == 3
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


def test_rebreeding_the_same_recipe_reuses_the_registered_child(lab, bred):
    home, registry, pico = lab
    again = breed_child(registry, home, pico.parent.id, QUICK, OPTIONS)
    assert again.reused and again.child.id == bred[0].child.id


@pytest.mark.parametrize("teacher", ["topk", "live"])
def test_the_other_teacher_modes_breed_too(lab, teacher):
    home, registry, pico = lab
    outcome = breed_child(registry, home, pico.parent.id, replace(QUICK, teacher=teacher, steps=6), OPTIONS)
    assert outcome.child.manifest.recipe["teacher"] == teacher
    assert all(entry["kd"] >= 0 for entry in outcome.result.curve)
