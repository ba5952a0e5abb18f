"""A niche from a user's own files and examples (``breedlab niche add``), on a throw-away home."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.data.example_shards import iter_examples
from breedlab.data.examples import ExamplesError, read_examples
from breedlab.data.niche import NicheError, add_niche, registered_niches
from breedlab.home import Home
from breedlab.registry import Registry

LICENCES = {"MIT": "Permission is hereby granted, free of charge, to any person obtaining a copy",
            "Apache": "Licensed under the Apache License, Version 2.0; you may not use this file except",
            "GPL": "This program is free software: you can redistribute it and/or modify it under the GNU"}


def _home(tmp_path):
    home = Home.resolve(tmp_path / "home")
    return home, Registry.open(home.registry_dir)


def _repo(tmp_path):
    repo = tmp_path / "repo"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "ledger.py").write_text("def balance(entries):\n    \"\"\"Sum the ledger's entries.\"\"\"\n"
                                            "    return sum(e.amount for e in entries if not e.void)\n" * 3)
    (repo / "README.md").write_text("# Ledger\n\nA tiny double-entry ledger for a household budget, "
                                    "with monthly reports and a command line.\n" * 3)
    (repo / "docs.html").write_text("<html><head><style>p {color: red}</style></head><body><h1>Reports</h1>"
                                    "<p>Monthly reports group entries by account and show the running "
                                    "balance.</p><script>var x = 1;</script></body></html>")
    (repo / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + bytes(range(256)))
    return repo


def _examples(path, count=30, bad_line=None):
    lines = []
    for i in range(count):
        family = list(LICENCES)[i % 3]
        lines.append(json.dumps({"input": f"{LICENCES[family]} (clause {i})", "output": family}))
    if bad_line:
        lines[bad_line - 1] = '{"input": "no output here"}'
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_folder_becomes_a_niche_binary_skipped_and_named_and_a_re_add_finds_the_same_ids(tmp_path):
    home, registry = _home(tmp_path)
    repo = _repo(tmp_path)
    report = add_niche(home, registry, "my-ledger", docs=[str(repo)])
    assert sorted(report.datasets) == ["my-ledger/test", "my-ledger/train", "my-ledger/validation"]
    assert any("logo.png" in note and "binary" in note for note in report.notes)
    texts = [d for name in report.datasets for d in _texts(registry, name)]
    assert any("def balance" in t for t in texts) and any("double-entry ledger" in t for t in texts)
    html = next(t for t in texts if "Monthly reports group" in t)
    assert "<p>" not in html and "color: red" not in html and "var x" not in html  # visible text only
    again = add_niche(home, registry, "my-ledger", docs=[str(repo)])
    assert again.datasets == report.datasets
    assert registered_niches(registry)["my-ledger"]["task"] is None


def _texts(registry, name):
    from breedlab.data.read import iter_texts

    return list(iter_texts(registry.find(kind="dataset", name=name)[0].path))


def test_a_bad_line_refuses_the_file_naming_its_line_and_registers_nothing(tmp_path):
    home, registry = _home(tmp_path)
    bad = _examples(tmp_path / "bad.jsonl", bad_line=7)
    with pytest.raises(ExamplesError, match=r"bad\.jsonl line 7: 'output' must be a non-empty string"):
        add_niche(home, registry, "licences", examples=bad, task="classify")
    assert registry.find(kind="dataset") == []
    for line, error in [("[1, 2]", "expected a JSON object"), ('{"input": "a", "output": "b", "x": 1}', "unknown key"),
                        ('{"messages": [{"role": "user", "content": "hi"}]}', "at least a user and an assistant"),
                        ('{"input": "a", "output": "b", "sources": [3]}', "sources must be a list")]:
        (tmp_path / "one.jsonl").write_text(line + "\n")
        with pytest.raises(ExamplesError, match=error):
            read_examples(tmp_path / "one.jsonl")


def test_examples_alone_make_a_task_niche_with_document_splits_beside_them(tmp_path):
    home, registry = _home(tmp_path)
    examples = _examples(tmp_path / "licences.jsonl")
    with open(examples, "a") as stream:  # a repeat and a chat-form example
        stream.write(examples.read_text().splitlines()[0] + "\n")
        stream.write(json.dumps({"messages": [{"role": "system", "content": "Name the licence family."},
                                              {"role": "user", "content": LICENCES["MIT"] + " (chat)"},
                                              {"role": "assistant", "content": "MIT"}]}) + "\n")
    report = add_niche(home, registry, "licences", examples=examples, task="classify")
    assert report.repeats == 1 and sum(report.examples.values()) == 31
    assert report.examples["test"] >= 5 and report.examples["validation"] >= 2  # held out: 20% and 10%
    test = list(iter_examples(registry.find(kind="dataset", name="licences/examples/test")[0].path))
    assert len(test) == report.examples["test"] and all(e.output in LICENCES for e in test)
    assert {"licences/train", "licences/validation", "licences/test"} <= set(report.datasets)
    assert len(_texts(registry, "licences/test")) == report.examples["test"]  # the same split as the examples
    chat = [e for s in ("train", "validation", "test") for e in iter_examples(
        registry.find(kind="dataset", name=f"licences/examples/{s}")[0].path) if e.input.endswith("(chat)")]
    assert chat[0].messages[0] == {"role": "system", "content": "Name the licence family."}
    assert add_niche(home, registry, "licences", examples=examples, task="classify").datasets == report.datasets
    assert registered_niches(registry)["licences"]["task"] == "classify"


def test_a_niche_is_refused_when_it_cannot_be_what_was_asked(tmp_path):
    home, registry = _home(tmp_path)
    examples = _examples(tmp_path / "e.jsonl")
    for kwargs, error in [({"name": "Bad Name", "examples": examples, "task": "classify"}, "lower-case"),
                          ({"name": "code", "examples": examples, "task": "classify"}, "built-in domain"),
                          ({"name": "x", "examples": examples}, "need --task"),
                          ({"name": "x"}, "needs --docs, --examples"),
                          ({"name": "x", "docs": [str(tmp_path / "nothing-here")]}, "no documents")]:
        with pytest.raises(NicheError, match=error):
            add_niche(home, registry, **kwargs)
    assert registry.find(kind="dataset") == []


def test_the_niche_commands_add_list_and_show(tmp_path):
    home = tmp_path / "home"
    examples = _examples(tmp_path / "licences.jsonl")
    run = CliRunner().invoke(app, ["niche", "add", "licences", "--examples", str(examples), "--task", "classify",
                                   "--home", str(home)])
    assert run.exit_code == 0, run.output
    assert "licences/examples/test" in run.output
    listing = CliRunner().invoke(app, ["niche", "list", "--home", str(home)])
    assert "licences" in listing.output and "classify" in listing.output
    shown = CliRunner().invoke(app, ["niche", "show", "licences", "--home", str(home)])
    assert "examples" in shown.output and "licences/examples/train" in shown.output
    bad = CliRunner().invoke(app, ["niche", "add", "other", "--examples", str(_examples(tmp_path / "b.jsonl",
                                                                                         bad_line=7)),
                                   "--task", "classify", "--home", str(home)])
    assert bad.exit_code != 0 and "line 7" in bad.output and "nothing was registered" in bad.output
