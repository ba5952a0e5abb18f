"""One contract for every registered operator (peft's test-matrix idea): the same checks, the same pico lab.

For each name in ``operator_names()``: the output loads, its manifest is valid with
parents = [input id] (for a merge: the models it merged, which its recipe function makes
first) and the operator's name, the input is unchanged (its weights' digest and
``registry verify``), and the same seed on the same inputs in a second, fresh
registry gives the same artifact id. A new operator fails here until it has
a tiny recipe in ``RECIPES``, an instance of the recipe class its registration binds;
so does a new CMG strategy (cases ``cmg:<strategy>``).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from breedlab.cmg.inputs import load_frozen
from breedlab.cmg.recipe import CMGRecipe, RunOptions, preset_recipe
from breedlab.cmg.student import STRATEGIES
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model, weights_digest
from breedlab.operators.adapter_finetune import AdapterFinetuneRecipe
from breedlab.operators.merge import MergeRecipe
from breedlab.operators.merge_distill import MergeDistillRecipe
from breedlab.operators.prune import PruneRecipe
from breedlab.operators.quantize import QuantizeRecipe, load_quantized
from breedlab.operators.table import get_operator, operator_names, recipe_class
from breedlab.registry import MODEL_KINDS, Registry, verify
from breedlab.registry.manifest import parse

TINY = {"steps": 6, "batch_size": 2, "seq_len": 32, "lora_rank": 4, "lora_alpha": 8, "pool_tokens": 512,
        "rehearsal_pool_tokens": 256, "warmup_steps": 2}
RECIPES = {  # operator -> the smallest recipe that exercises it
    "cmg": CMGRecipe(domain="code", ratio=0.5, profile_tokens=256, **TINY),
    # the pruning strategies; 'mixed' through the compact preset (full training, T=1, hidden-state loss),
    # with a domain head
    "cmg:width": CMGRecipe(domain="code", ratio=0.5, strategy="width", profile_tokens=256,
                           calibration_general_share=0.25, **TINY),
    "cmg:depth": CMGRecipe(domain="code", ratio=0.5, strategy="depth", profile_tokens=256, **TINY),
    "cmg:mixed": preset_recipe("compact", "code", ratio=0.5, profile_tokens=256, proxy_tokens=128,
                               domain_head_coverage=0.9, **TINY),
    "adapter-finetune": AdapterFinetuneRecipe(domain="code", **TINY),
    "quantize": QuantizeRecipe(),
    "prune": PruneRecipe(domain="code", ratio=0.5, profile_tokens=256, seq_len=TINY["seq_len"]),
    # Merges take other models as input: a function (registry, home, parent id) -> recipe makes them first.
    "merge": lambda *lab: MergeRecipe(models=_specialists(*lab, "adapter-finetune", "adapter-finetune")),
    "merge-distill": lambda *lab: MergeDistillRecipe(models=_specialists(*lab, "cmg", "adapter-finetune"), **TINY),
}
OPTIONS = RunOptions(progress=False, threads=1, checkpoint_every=100)
LOADERS = {"quantized": load_quantized}  # kind -> loader; every other model kind loads with load_model


def _specialists(registry, home, parent_id, *operators) -> tuple[str, ...]:
    """A code and a medical specialist of the parent, made by ``operators`` from the tiny recipes above."""
    recipes = [replace(RECIPES[name], domain=domain) for name, domain in zip(operators, ("code", "medical"))]
    return tuple(get_operator(name)(registry, home, parent_id, recipe, OPTIONS).child.id
                 for name, recipe in zip(operators, recipes))


def expected_parents(recipe, parent_id: str) -> tuple[str, ...]:
    """The input ids an output names as its parents: the merged models for a merge, else the parent."""
    return tuple(dict.fromkeys(recipe.models)) if hasattr(recipe, "models") else (parent_id,)


def _lab(root):
    home = Home.resolve(root)
    registry = Registry.open(home.registry_dir)
    return home, registry, build_pico_lab(registry, home.cache_dir)


@pytest.fixture(scope="module")
def labs(tmp_path_factory):
    """Two independent registries with the same pico lab: the second checks determinism."""
    torch.set_num_threads(1)
    first, second = _lab(tmp_path_factory.mktemp("contract")), _lab(tmp_path_factory.mktemp("contract-twin"))
    parent, _ = load_frozen(first[2].parent)
    return first, second, weights_digest(parent)


@pytest.fixture(scope="module")
def runs(labs):
    """operator name -> (artifact in the first lab, artifact in the twin), made on first use."""
    made = {}

    def run(name):
        if name not in made:
            outputs = []
            for home, registry, pico in labs[:2]:
                recipe = RECIPES[name](registry, home, pico.parent.id) if callable(RECIPES[name]) else RECIPES[name]
                operator = get_operator(name.split(":")[0])  # "cmg:width": the cmg operator, one strategy
                outputs.append(operator(registry, home, pico.parent.id, recipe, OPTIONS).child)
                run.recipes.setdefault(name, recipe)  # the first lab's, for the parents its output must name
            made[name] = tuple(outputs)
        return made[name]

    run.recipes = {}
    return run


CASES = sorted(RECIPES)


def test_a_domain_head_ships_beside_weights_that_plain_transformers_loads(runs):
    from transformers import AutoModelForCausalLM

    from breedlab.cmg.domain_head import HEAD_FILE, DomainHead
    from breedlab.evaluation.measure import load_candidate

    artifact = runs("cmg:mixed")[0]
    assert HEAD_FILE in artifact.manifest.files
    head = artifact.manifest.metrics["domain_head"]
    assert head["kept"] < head["vocab"] and head["train_coverage"] >= 0.9 and 0 < head["validation_coverage"] <= 1
    plain = AutoModelForCausalLM.from_pretrained(artifact.path)  # the full head, exactly; the file is ignored
    assert not isinstance(plain.lm_head, DomainHead)
    assert isinstance(load_candidate(artifact)[0].lm_head, DomainHead)  # breedlab attaches it


def test_every_registered_operator_and_cmg_strategy_has_a_contract_recipe():
    assert sorted({case.split(":")[0] for case in RECIPES}) == operator_names()
    for case, recipe in RECIPES.items():
        if not callable(recipe):
            assert isinstance(recipe, recipe_class(case.split(":")[0])), case
    covered = {RECIPES[case].strategy for case in RECIPES if case.startswith("cmg")}
    assert {"profiled", "width", "depth", "mixed"} <= covered <= set(STRATEGIES)


@pytest.mark.parametrize("name", CASES)
def test_the_output_loads_and_runs(runs, name):
    artifact = runs(name)[0]
    expected = {file: entry.sha256 for file, entry in artifact.manifest.files.items()}
    model, tokenizer = LOADERS.get(artifact.manifest.kind, load_model)(artifact.path, expected_files=expected)
    ids = torch.tensor([tokenizer("def alpha(beta):")["input_ids"]])  # (1, S)
    with torch.no_grad():
        logits = model(input_ids=ids).logits  # (1, S, V)
    assert logits.shape == (1, ids.shape[1], len(tokenizer)) and torch.isfinite(logits).all()


@pytest.mark.parametrize("name", CASES)
def test_the_manifest_is_valid_and_names_its_input_and_operator(labs, runs, name):
    (_, registry, pico), artifact = labs[0], runs(name)[0]
    stored = parse((registry.manifests_dir / f"{artifact.id}.json").read_bytes())  # re-validates, checks the id
    assert stored.id == artifact.id and stored.kind in MODEL_KINDS
    assert stored.parents == expected_parents(runs.recipes[name], pico.parent.id)
    assert stored.operator == name.split(":")[0]
    assert stored.recipe and all(registry.get(ref) for ref in stored.data)


@pytest.mark.parametrize("name", CASES)
def test_the_input_is_unchanged_and_the_registry_verifies(labs, runs, name):
    runs(name)
    (_, registry, pico), digest = labs[0], labs[2]
    reloaded, _ = load_frozen(registry.get(pico.parent.id))  # re-hashes every file against the manifest
    assert weights_digest(reloaded) == digest
    assert [f for f in verify(registry.root) if f.level == "problem"] == []


@pytest.mark.parametrize("name", CASES)
def test_the_same_inputs_in_a_fresh_registry_give_the_same_artifact(labs, runs, name):
    first, twin = runs(name)
    assert labs[0][2].parent.id == labs[1][2].parent.id
    assert first.id == twin.id



@pytest.mark.parametrize("name", CASES)
def test_the_breeding_identity_registers_the_output(labs, runs, name):
    """Authority rests on it: governance refuses an approver who registered (bred) the candidate."""
    (_, registry, _), artifact = labs[0], runs(name)[0]
    assert next(e for e in registry.events(artifact.id) if e.type == "registered").actor == OPTIONS.actor


def test_prune_cuts_what_a_cmg_breed_starts_from_and_heals_separately(labs, runs):
    """The same steps-1-2 fields give the CMG child's exact selection; an adapter fine-tune heals it."""
    pruned, bred = runs("prune")[0], runs("cmg")[0]
    assert pruned.manifest.kind == "child" and pruned.manifest.recipe["trained"] is False
    assert pruned.manifest.recipe["selection_sha256"] == bred.manifest.recipe["selection_sha256"]
    home, registry, _ = labs[0]
    healed = get_operator("adapter-finetune")(registry, home, pruned.id, RECIPES["adapter-finetune"], OPTIONS).child
    assert healed.manifest.parents == (pruned.id,) and healed.manifest.kind == "adapter"
    assert healed.manifest.metrics["steps"] == RECIPES["adapter-finetune"].steps
