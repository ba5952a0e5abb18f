"""Frozen evaluation suites: built from test splits only, deterministic, refused when tampered with."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch

from breedlab.evaluation import cloze
from breedlab.evaluation.passages import encode
from breedlab.evaluation.scorers import SuiteRefused, UnknownScorer, scorer
from breedlab.evaluation.suites import (
    CASES_FILE,
    SUITE_FILE,
    SuiteTampered,
    build_suite,
    content_sha256,
    load_suite,
    run_suite,
)
from breedlab.home import Home
from breedlab.lab.pico_home import build_pico_lab
from breedlab.models.io import load_model
from breedlab.registry import Registry
from breedlab.registry.canonical import canonical_json

CLOZE = {"cases": 12, "seed": 0, "context_tokens": 48, "continuation_tokens": 16}


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    torch.set_num_threads(1)
    home = Home.resolve(tmp_path_factory.mktemp("suites"))
    registry = Registry.open(home.registry_dir)
    pico = build_pico_lab(registry, home.cache_dir)
    model, tokenizer = load_model(pico.parent.path)
    suites = {
        "cloze": build_suite(registry, "cloze", "code", tokenizer=tokenizer, **CLOZE),
        "lm": build_suite(registry, "lm", "code", tokenizer=tokenizer, cases=16, seed=0, tokens=32),
        "retention": build_suite(registry, "retention", "general", tokenizer=tokenizer, cases=16, tokens=32),
    }
    return registry, pico, model, tokenizer, suites


def test_suites_are_cut_from_the_test_split_only(lab):
    registry, pico, _, tokenizer, suites = lab
    for kind, domain in (("cloze", "code"), ("lm", "code"), ("retention", "general")):
        suite = load_suite(registry, suites[kind].id)
        test_id = pico.datasets[domain]["test"].id
        assert suite.source_dataset == test_id and suites[kind].manifest.data == (test_id,)
        assert suites[kind].manifest.name == f"{domain}/{kind}"
    train = pico.datasets["code"]["train"].id
    with pytest.raises(SuiteRefused, match="test splits only"):
        build_suite(registry, "cloze", "code", tokenizer=tokenizer, source=train, **CLOZE)
    with pytest.raises(ValueError, match="general"):
        build_suite(registry, "retention", "code", tokenizer=tokenizer, cases=4)


def test_same_seed_gives_the_same_suite_and_another_seed_other_cases(lab):
    registry, _, _, tokenizer, suites = lab
    again = build_suite(registry, "cloze", "code", tokenizer=tokenizer, **CLOZE)
    assert again.id == suites["cloze"].id
    other = build_suite(registry, "cloze", "code", tokenizer=tokenizer, **{**CLOZE, "seed": 1})
    assert other.id != suites["cloze"].id
    assert load_suite(registry, other.id).cases != load_suite(registry, again.id).cases


def test_lm_passages_have_the_fixed_token_length(lab):
    registry, _, _, tokenizer, suites = lab
    for kind in ("lm", "retention"):
        suite = load_suite(registry, suites[kind].id)
        assert len(suite.cases) == 16 and suite.settings == {"tokens": 32}
        assert all(len(encode(tokenizer, case["text"])) == 32 for case in suite.cases)


def test_distractors_come_from_other_documents_of_the_same_domain(lab):
    registry, pico, _, tokenizer, suites = lab
    suite = load_suite(registry, suites["cloze"].id)
    test_docs = {json.loads(line)["id"] for line in
                 (pico.datasets["code"]["test"].path / "shard-00000.jsonl").read_text().splitlines()}
    assert len(suite.cases) == CLOZE["cases"]
    for case in suite.cases:
        assert len(case["options"]) == 4 and len(set(case["options"])) == 4
        assert case["option_docs"][case["answer"]] == case["doc"]
        others = [d for i, d in enumerate(case["option_docs"]) if i != case["answer"]]
        assert case["doc"] not in others and len(set(others)) == 3
        assert set(case["option_docs"]) <= test_docs
        assert all(len(encode(tokenizer, text)) == 16 for text in case["options"])
    assert len({case["answer"] for case in suite.cases}) > 1  # the truth is not always in one place


def _oracle(suite, tokenizer, prefer_truth: bool):
    """A stand-in for option_logliks that knows every case's true continuation."""
    truth = {tuple(encode(tokenizer, c["context"])): tuple(encode(tokenizer, c["options"][c["answer"]]))
             for c in suite.cases}

    def logliks(model, context, options):
        right = [tuple(option) == truth[tuple(context)] for option in options]
        return [0.0 if r == prefer_truth else -1.0 for r in right], False
    return logliks


def test_a_model_that_always_prefers_the_truth_scores_one(lab, monkeypatch):
    registry, _, model, tokenizer, suites = lab
    suite = load_suite(registry, suites["cloze"].id)
    monkeypatch.setattr(cloze, "option_logliks", _oracle(suite, tokenizer, prefer_truth=True))
    result = run_suite(suite, model, tokenizer)
    assert result.accuracy == 1.0 and result.case_scores == [1.0] * len(suite.cases)
    monkeypatch.setattr(cloze, "option_logliks", _oracle(suite, tokenizer, prefer_truth=False))
    assert run_suite(suite, model, tokenizer).accuracy == 0.0
    monkeypatch.setattr(cloze, "option_logliks", lambda model, context, options: ([0.0] * len(options), False))
    assert run_suite(suite, model, tokenizer).accuracy == 0.0  # a tie is a miss, never a win


def test_the_real_scorer_runs_on_the_pico_parent(lab):
    registry, _, model, tokenizer, suites = lab
    result = run_suite(load_suite(registry, suites["cloze"].id), model, tokenizer)
    assert 0.0 <= result.accuracy <= 1.0 and len(result.case_scores) == CLOZE["cases"]
    assert not result.nonfinite


def _writable(path: Path) -> Path:
    os.chmod(path, 0o644)  # registry files are read-only hard links into the object store
    return path


def test_a_suite_with_one_changed_case_is_refused(lab):
    registry, pico, _, tokenizer, _ = lab
    suite = build_suite(registry, "lm", "code", tokenizer=tokenizer, cases=8, seed=7, tokens=32)
    cases_path = _writable(suite.path / CASES_FILE)
    lines = cases_path.read_text().splitlines(keepends=True)
    case = json.loads(lines[3])
    case["text"] = case["text"][:-1] + ("a" if case["text"][-1] != "a" else "b")  # one character
    cases_path.write_text("".join(lines[:3] + [canonical_json(case).decode() + "\n"] + lines[4:]))
    with pytest.raises(SuiteTampered, match=suite.id[:12]):
        load_suite(registry, suite.id)
    from breedlab.evaluation.measure import measure_candidate

    with pytest.raises(SuiteTampered):  # the evaluator refuses before loading any model
        measure_candidate(registry, pico.parent.id, {"lm": suite.id}, isolate=False)


def _forge(registry, original, tokenizer, **scorer_ref):
    """Register a copy of ``original`` whose suite.json names another scorer, with consistent hashes."""
    header = json.loads((original.path / SUITE_FILE).read_text())
    cases = [json.loads(line) for line in (original.path / CASES_FILE).read_text().splitlines()]
    header["scorer"] = scorer_ref
    header["content_sha256"] = content_sha256(header["kind"], scorer_ref, header["settings"],
                                              header["tokenizer"], cases)
    with tempfile.TemporaryDirectory() as scratch:
        files = {CASES_FILE: Path(scratch) / CASES_FILE, SUITE_FILE: Path(scratch) / SUITE_FILE}
        files[CASES_FILE].write_bytes((original.path / CASES_FILE).read_bytes())
        files[SUITE_FILE].write_bytes(canonical_json(header) + b"\n")
        return registry.register("eval-suite", original.manifest.name, files, operator="forged",
                                 recipe={"forged": scorer_ref}, data=list(original.manifest.data))


def test_a_suite_naming_another_scorer_version_or_an_unknown_scorer_is_refused(lab):
    registry, _, _, tokenizer, suites = lab
    original = suites["cloze"]
    for ref, message in (({"name": "cloze-loglik", "version": 2}, "version 2"),
                         ({"name": "always-right", "version": 1}, "always-right"),
                         ({"name": "lm-next-token", "version": 1}, "not 'cloze'")):
        forged = _forge(registry, original, tokenizer, **ref)
        with pytest.raises(UnknownScorer, match=message):
            load_suite(registry, forged.id)


def test_an_edited_suite_json_is_refused(lab):
    registry, _, _, tokenizer, _ = lab
    suite = build_suite(registry, "cloze", "code", tokenizer=tokenizer, **{**CLOZE, "seed": 9, "cases": 4})
    header = json.loads((suite.path / SUITE_FILE).read_text())
    header["scorer"]["version"] = 2  # the suite.json edit alone breaks the file's recorded sha256
    _writable(suite.path / SUITE_FILE).write_bytes(canonical_json(header) + b"\n")
    with pytest.raises(SuiteTampered, match=SUITE_FILE):
        load_suite(registry, suite.id)


def test_scorer_names_are_unique_and_checked():
    with pytest.raises(ValueError, match="already registered"):
        scorer("cloze-loglik", version=1, kinds=("cloze",))(lambda *args: None)
    with pytest.raises(ValueError, match="lower-case"):
        scorer("Cloze", version=1, kinds=("cloze",))
