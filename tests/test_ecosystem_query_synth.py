"""Synthetic queries from the parent: deterministic with their seed, recorded, filtered and counted."""

from __future__ import annotations

import pytest

from breedlab.data.config import load_config
from breedlab.data.read import iter_documents
from breedlab.ecosystem.query_filter import extract_query, filter_generations
from breedlab.ecosystem.query_synth import QuerySynthRecipe, dataset_name, first_documents, generate_raw, synthesize
from breedlab.lab.pico_home import build_pico_lab
from breedlab.registry import Registry, verify


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    registry = Registry.open(root / "registry")
    return registry, build_pico_lab(registry, root / "cache", domains=("code", "general"), docs=24), root


RECIPE = QuerySynthRecipe(docs=6, max_new_tokens=12, batch_size=4, seed=3)


def test_generation_is_deterministic_with_its_seed(lab, pico):
    model, tokenizer = pico
    excerpts = ["def add(a, b): return a + b", "The kidney is tender.", "In the morning she walked."]
    first, tokens = generate_raw(model, tokenizer, excerpts, RECIPE)
    again, _ = generate_raw(model, tokenizer, excerpts, RECIPE)
    other, _ = generate_raw(model, tokenizer, excerpts, QuerySynthRecipe(**{**RECIPE.__dict__, "seed": 4}))
    assert first == again and tokens > 0
    assert other != first  # the seed is what fixes the sample


def test_the_dataset_records_its_recipe_cost_and_filter_and_is_found_again(lab):
    registry, pico_lab, root = lab
    parent = pico_lab.parent.id
    artifact = synthesize(registry, parent, "code", "train", RECIPE, cache_dir=root)
    recipe, metrics = artifact.manifest.recipe, artifact.manifest.metrics
    assert artifact.manifest.name == dataset_name("code", "train") == "code/train/queries"
    assert recipe["seed"] == 3 and recipe["temperature"] == RECIPE.temperature and recipe["ask"] == RECIPE.ask
    assert recipe["parent"] == parent and artifact.manifest.parents == (parent,)
    counts = metrics["filter"]
    assert counts["generated"] == 6 and counts["kept"] == metrics["docs"]
    assert counts["kept"] + sum(v for k, v in counts.items() if k not in ("generated", "kept")) == 6
    assert metrics["generation_s"] > 0 and metrics["generated_tokens"] > 0
    assert len(list(iter_documents(artifact.path))) == metrics["docs"]
    assert synthesize(registry, parent, "code", "train", RECIPE, cache_dir=root).id == artifact.id  # cached
    assert [f for f in verify(registry.root) if f.level == "problem"] == []  # an unsigned home's note is no problem


def test_the_privacy_canary_is_never_shown_to_the_parent(lab):
    registry, _, _ = lab
    train = registry.find(kind="dataset", name="code/train")[0].path
    secret = load_config().canary_secret
    assert any(secret in d["text"] for d in iter_documents(train))  # planted in train
    shown = first_documents(train, 10_000)
    assert shown and not any(secret in d["text"] for d in shown)
    assert len(shown) == len(list(iter_documents(train))) - 1


def test_the_filter_extracts_questions_and_counts_every_drop():
    assert extract_query('A user might ask: "How do I sort a list in Python?"') == "How do I sort a list in Python?"
    assert extract_query("Question: What is a kidney cyst?\nMore text") == "What is a kidney cyst?"
    documents = ["Python lists have a sort method."] * 6
    generations = ["How do I sort a list in Python?", "", "list list list list list list list list",
                   "How do I pretty-print a dictionary as JSON in Python?", "Why is the sky blue today?",
                   "how do I sort a list in python"]
    kept, counts = filter_generations(generations, documents,
                                      avoid=["How do I pretty-print a dictionary as JSON in Python?"])
    assert [i for i, _ in kept] == [0]
    assert counts == {"generated": 6, "kept": 1, "empty": 1, "length": 0, "degenerate": 1, "copied_example": 1,
                      "ungrounded": 1, "near_duplicate": 1}
