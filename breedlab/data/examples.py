"""A user's examples: JSONL of inputs and desired outputs, checked line by line before anything is kept.

Two forms per line, optionally with ``"sources": [str, ...]`` for grounded tasks:

    {"input": "...", "output": "..."}
    {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ..., {"role": "assistant", ...}]}

In chat form the last message is the assistant's desired output and the ones before it the
prompt. A line that is not one of these is refused with its line number (``ExamplesError``),
and the caller registers nothing. An example's id is a hash of its content, so the same
example gets the same split wherever it sits in the file; exact repeats are dropped (counted).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from breedlab.registry.canonical import sha256_json

ROLES = ("system", "user", "assistant")
TASKS = ("classify", "extract", "summarize", "rewrite", "grounded")
"""Task kinds an examples niche is judged by (``evaluation/task_metrics.py`` scores each)."""
KEYS = {"input", "output", "messages", "sources"}


class ExamplesError(ValueError):
    """A malformed examples file; the message names the file and the line."""


@dataclass(frozen=True)
class Example:
    messages: tuple[dict, ...]
    """The prompt: role/content messages, the last one the user's."""
    output: str
    """The desired answer (the only tokens the loss falls on)."""
    sources: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        return "ex-" + sha256_json(self.record())[:16]

    @property
    def input(self) -> str:
        """What the user asked: the last prompt message (the text a router or monitor sees)."""
        return self.messages[-1]["content"]

    def record(self) -> dict:
        """The stored form (a dataset shard line's example fields)."""
        return {"messages": [dict(m) for m in self.messages], "output": self.output, "sources": list(self.sources)}

    @classmethod
    def from_record(cls, record: dict) -> Example:
        return cls(tuple(record["messages"]), record["output"], tuple(record.get("sources") or ()))


def read_examples(path: Path) -> tuple[list[Example], int]:
    """(the unique examples in file order, how many exact repeats were dropped); refuses a bad line."""
    path = Path(path)
    if not path.is_file():
        raise ExamplesError(f"{path}: no such examples file")
    examples: dict[str, Example] = {}
    repeats = 0
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip():
                continue
            example = parse_line(line, f"{path} line {number}")
            repeats += example.id in examples
            examples.setdefault(example.id, example)
    if not examples:
        raise ExamplesError(f"{path}: no examples in the file")
    return list(examples.values()), repeats


def parse_line(line: str, where: str) -> Example:
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ExamplesError(f"{where}: not JSON ({exc.msg})") from None
    if not isinstance(raw, dict):
        raise ExamplesError(f"{where}: expected a JSON object, got {type(raw).__name__}")
    unknown = set(raw) - KEYS
    if unknown:
        raise ExamplesError(f"{where}: unknown key(s) {sorted(unknown)}; an example has input/output or messages, "
                            "and optionally sources")
    sources = _strings(raw.get("sources", []), f"{where}: sources")
    if "messages" in raw:
        if "input" in raw or "output" in raw:
            raise ExamplesError(f"{where}: give either messages or input/output, not both")
        messages = _messages(raw["messages"], where)
        return Example(tuple(messages[:-1]), messages[-1]["content"], tuple(sources))
    for key in ("input", "output"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise ExamplesError(f"{where}: {key!r} must be a non-empty string")
    return Example(({"role": "user", "content": raw["input"]},), raw["output"], tuple(sources))


def _messages(value, where: str) -> list[dict]:
    if not isinstance(value, list) or len(value) < 2:
        raise ExamplesError(f"{where}: messages must be a list of at least a user and an assistant message")
    messages = []
    for index, message in enumerate(value):
        at = f"{where}: messages[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            raise ExamplesError(f"{at} must be an object with exactly role and content")
        if message["role"] not in ROLES or not isinstance(message["content"], str) or not message["content"].strip():
            raise ExamplesError(f"{at}: role must be one of {ROLES} and content a non-empty string")
        messages.append({"role": message["role"], "content": message["content"]})
    if messages[-1]["role"] != "assistant" or messages[-2]["role"] != "user":
        raise ExamplesError(f"{where}: the last message must be the assistant's output, after a user message")
    return messages


def _strings(value, where: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ExamplesError(f"{where} must be a list of non-empty strings")
    return list(value)
