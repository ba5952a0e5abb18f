"""Labelled live traffic: every label names its source; a refit learns only from trusted, kept text."""

from __future__ import annotations

import pytest

from breedlab.ecosystem.labels import LabelStore


def test_only_labels_with_a_trusted_provenance_and_kept_text_are_training_data(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    store.add("how do i reverse a list", "code", "monitor", keep_text=True, confidence=0.7)
    store.add("what causes gout", "medical", "feedback", keep_text=True)
    store.add("private question", "code", "monitor", keep_text=False)  # hash-only log: counted, never learnt
    store.add("set the hostname", "sysadmin", "admin", keep_text=True)
    assert store.training_labels(("monitor", "feedback")) == {"code": ["how do i reverse a list"],
                                                            "medical": ["what causes gout"]}
    assert store.training_labels(("admin",), domains=["code"]) == {}
    assert store.training_labels(("made-up",)) == {}
    assert store.counts() == {"admin": 1, "feedback": 1, "monitor": 2}
    first = store.last_id()
    store.add("how do i open a file", "code", "monitor", keep_text=True)
    assert store.training_labels(("monitor",), after_id=first) == {"code": ["how do i open a file"]}


def test_a_label_without_a_known_provenance_or_domain_is_refused(tmp_path):
    store = LabelStore(tmp_path / "labels.sqlite")
    with pytest.raises(ValueError, match="unknown label provenance"):
        store.add("text", "code", "guess", keep_text=True)
    with pytest.raises(ValueError, match="needs a domain"):
        store.add("text", "", "monitor", keep_text=True)
    assert store.last_id() == 0
