"""Hand-written questions: how people ask, per built-in domain, plus text no specialist should take.

The corpora are documents (stdlib modules, ontology entries, man pages); users send questions
("How do I reverse a list in Python?"). These small sets were written by hand for this repository
(issue 12), one JSONL file per domain under ``question_sets/``, each line ``{"text", "domain"}``.
``out-of-domain`` holds everyday questions (cooking, travel, sport) that belong to no built-in
domain: a router should keep them on the parent. They calibrate and test routing; they are never
training data for a child. Routers are also scored on questions kept outside the repository.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

QUESTION_DIR = Path(__file__).resolve().parent / "question_sets"
OUT_OF_DOMAIN = "out-of-domain"


@dataclass(frozen=True)
class Question:
    """One hand-written query and the domain it belongs to (``out-of-domain``: none)."""

    text: str
    domain: str


def question_domains(directory: Path = QUESTION_DIR) -> list[str]:
    """The sets present, sorted (the built-in domains and ``out-of-domain``)."""
    return sorted(path.stem for path in directory.glob("*.jsonl"))


def load_questions(domain: str, directory: Path = QUESTION_DIR) -> list[Question]:
    """Every question of one set, in file order; a malformed line is refused with its number."""
    path = directory / f"{domain}.jsonl"
    if not path.is_file():
        known = ", ".join(question_domains(directory)) or "none"
        raise FileNotFoundError(f"no question set {domain!r} in {directory} (sets: {known})")
    questions, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        question = _parse_line(path, number, line, domain)
        if question.text in seen:
            raise ValueError(f"{path.name} line {number}: duplicate question {question.text!r}")
        seen.add(question.text)
        questions.append(question)
    return questions


def _parse_line(path: Path, number: int, line: str, domain: str) -> Question:
    where = f"{path.name} line {number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: not JSON ({exc})") from exc
    if not isinstance(record, dict) or set(record) != {"text", "domain"}:
        raise ValueError(f'{where}: expected an object with exactly "text" and "domain"')
    text, label = record["text"], record["domain"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: text must be a non-empty string")
    if label != domain:
        raise ValueError(f"{where}: domain {label!r} in the {domain!r} set")
    return Question(text=text.strip(), domain=label)
