"""The ``adapter-finetune`` operator on a pico lab: LoRA on the parent itself, through the CMG's loop."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from breedlab.cmg.inputs import load_frozen
from breedlab.cmg.recipe import RunOptions
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import count_parameters, load_model, weights_digest
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe, adapter_finetune
from breedlab.registry import Registry, verify

QUICK = AdapterFinetuneRecipe(domain="code", steps=30, batch_size=4, seq_len=64, lr=5e-3, warmup_steps=3,
                              lora_rank=8, lora_alpha=16, pool_tokens=4096, rehearsal_pool_tokens=1024)
OPTIONS = RunOptions(progress=False, checkpoint_every=10, threads=1)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("adapter-lab"))
    registry = Registry.open(home.registry_dir)
    return home, registry, build_pico_lab(registry, home.cache_dir)


@pytest.fixture(scope="module")
def tuned(lab):
    home, registry, pico = lab
    parent, _ = load_frozen(pico.parent)
    before = weights_digest(parent)
    return adapter_finetune(registry, home, pico.parent.id, QUICK, OPTIONS), before


def test_the_parent_is_unchanged_and_the_registry_verifies(lab, tuned):
    _, registry, pico = lab
    outcome, before = tuned
    reloaded, _ = load_frozen(registry.get(pico.parent.id))
    assert weights_digest(reloaded) == before
    assert outcome.child.manifest.metrics["parent_unchanged"] is True
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


def test_the_artifact_is_an_adapter_of_the_parent_with_its_data(lab, tuned):
    _, _, pico = lab
    manifest = tuned[0].child.manifest
    assert manifest.kind == "adapter" and manifest.operator == "adapter-finetune"
    assert manifest.parents == (pico.parent.id,)
    assert {pico.datasets["code"]["train"].id, pico.datasets["general"]["train"].id} <= set(manifest.data)
    recipe = manifest.recipe
    assert recipe["alpha_kd"] == 0.0 and recipe["rehearsal_weight"] == 0.10 and recipe["rehearsal_share"] == 0.05
    assert recipe["parent"] == pico.parent.id and recipe["inputs"]["key"] and "versions" in recipe


def test_the_folder_holds_the_peft_adapter_and_the_merged_model(lab, tuned):
    _, _, pico = lab
    child = tuned[0].child
    assert {"adapter/adapter_model.safetensors", "adapter/adapter_config.json", "config.json",
            "model.safetensors", "tokenizer.json", "training_curve.json"} <= set(child.manifest.files)
    config = json.loads((child.path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == f"breedlab:{pico.parent.id}"
    assert config["target_modules"] == sorted(config["target_modules"])  # not in string-hash order


def test_parent_plus_adapter_reproduces_the_merged_model(lab, tuned):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    _, _, pico = lab
    child = tuned[0].child
    merged = AutoModelForCausalLM.from_pretrained(child.path)  # plain transformers: no adapter applied
    assert not hasattr(merged, "peft_config")
    base, _ = load_model(pico.parent.path)
    with_adapter = PeftModel.from_pretrained(base, child.path / "adapter").eval()
    ids = torch.tensor([[1, 5, 9, 13, 40, 77, 120]])
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, with_adapter(input_ids=ids).logits, atol=1e-4)


def test_no_size_change_and_only_lora_trained(lab, tuned):
    _, _, pico = lab
    child = tuned[0].child
    model, _ = load_model(child.path)
    parent, _ = load_model(pico.parent.path)
    shape = ("num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "hidden_size")
    assert [getattr(model.config, k) for k in shape] == [getattr(parent.config, k) for k in shape]
    assert count_parameters(model) == count_parameters(parent) == child.manifest.metrics["parameters"]
    metrics = child.manifest.metrics
    assert 0 < metrics["trainable_fraction"] < 0.5
    assert abs(metrics["rehearsal_share"] - 0.05) <= 0.02 and metrics["rehearsal_tokens"] > 0
    assert metrics["tokens"] == QUICK.steps * QUICK.batch_size * QUICK.seq_len


def test_the_domain_loss_falls_and_the_drift_from_the_parent_is_logged(tuned):
    outcome = tuned[0]
    curve = [e for e in outcome.result.curve if e["stream"] == "domain"]
    assert curve[0]["kd"] < 1e-6  # step 0: the model is the parent
    assert sum(e["loss"] for e in curve[-5:]) / 5 < 0.97 * sum(e["loss"] for e in curve[:5]) / 5
    assert outcome.child.manifest.metrics["final_kd_from_parent"] > 0


def test_a_rerun_reuses_and_an_interrupted_run_resumes_to_the_same_adapter(lab, tuned):
    home, registry, pico = lab
    again = adapter_finetune(registry, home, pico.parent.id, QUICK, OPTIONS)
    assert again.reused and again.child.id == tuned[0].child.id
    recipe = replace(QUICK, seed=1, steps=10)
    first = adapter_finetune(registry, home, pico.parent.id, recipe, replace(OPTIONS, stop_after=4))
    assert first.child is None and first.result.steps_done == 4
    resumed = adapter_finetune(registry, home, pico.parent.id, recipe, OPTIONS)
    other = Home.resolve(home.root.parent / "adapter-fresh")
    fresh_registry = Registry.open(other.registry_dir)
    fresh = build_pico_lab(fresh_registry, other.cache_dir)
    assert adapter_finetune(fresh_registry, other, fresh.parent.id, recipe, OPTIONS).child.id == resumed.child.id


def test_the_recipe_is_typed_and_maps_onto_the_cmg():
    assert AdapterFinetuneRecipe.from_dict(QUICK.to_dict()) == QUICK
    with pytest.raises(ValueError, match="unknown recipe fields"):
        AdapterFinetuneRecipe.from_dict({**QUICK.to_dict(), "ratio": 0.5})
    with pytest.raises(ValueError):
        AdapterFinetuneRecipe(domain="code", teacher="topk")
    cmg = QUICK.to_cmg()
    assert cmg.ratio == 1.0 and cmg.trainable == "lora" and cmg.alpha_kd == 0.0 and cmg.steps == QUICK.steps
