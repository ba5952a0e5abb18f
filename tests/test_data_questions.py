"""The hand-written question sets: every built-in domain has one, lines are checked, nothing repeats."""

from __future__ import annotations

import json

import pytest
import yaml

from breedlab.data.config import DEFAULT_CONFIG_PATH
from breedlab.data.questions import OUT_OF_DOMAIN, load_questions, question_domains


def test_every_built_in_domain_and_out_of_domain_has_a_set_of_at_least_thirty():
    built_in = [d["name"] for d in yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())["domains"]]
    assert question_domains() == sorted([*built_in, OUT_OF_DOMAIN])
    for domain in question_domains():
        questions = load_questions(domain)
        assert len(questions) >= 30 and all(q.domain == domain for q in questions), domain


def test_no_question_appears_in_two_sets():
    texts = [q.text.lower() for d in question_domains() for q in load_questions(d)]
    assert len(texts) == len(set(texts))


@pytest.mark.parametrize("line, message", [
    ("{not json", "line 2: not JSON"),
    (json.dumps({"text": "Why?"}), 'line 2: expected an object with exactly "text" and "domain"'),
    (json.dumps({"text": "  ", "domain": "code"}), "line 2: text must be a non-empty string"),
    (json.dumps({"text": "Why?", "domain": "medical"}), "line 2: domain 'medical' in the 'code' set"),
    (json.dumps({"text": "How do I sort?", "domain": "code"}), "line 2: duplicate question"),
])
def test_a_malformed_line_is_refused_with_its_number(tmp_path, line, message):
    first = json.dumps({"text": "How do I sort?", "domain": "code"})
    (tmp_path / "code.jsonl").write_text(first + "\n" + line + "\n")
    with pytest.raises(ValueError, match=message):
        load_questions("code", tmp_path)


def test_an_unknown_set_names_the_sets_there(tmp_path):
    (tmp_path / "code.jsonl").write_text("")
    with pytest.raises(FileNotFoundError, match=r"no question set 'cooking'.*\(sets: code\)"):
        load_questions("cooking", tmp_path)
