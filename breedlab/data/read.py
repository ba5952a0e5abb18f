"""Reading a registered dataset split back: its JSONL shards, in order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

SHARD_GLOB = "shard-*.jsonl"


def shard_paths(artifact_path: Path) -> list[Path]:
    """The shard files of a dataset directory, in shard order (their names sort that way)."""
    paths = sorted(Path(artifact_path).glob(SHARD_GLOB))
    if not paths:
        raise FileNotFoundError(f"no {SHARD_GLOB} files in {artifact_path}: not a dataset artifact")
    return paths


def iter_documents(artifact_path: Path) -> Iterator[dict]:
    """Yield ``{"id", "domain", "source", "text"}`` for every document of a dataset split, in order."""
    for path in shard_paths(artifact_path):
        with open(path, encoding="utf-8") as stream:
            for number, line in enumerate(stream, start=1):
                if not line.strip():
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path.name} line {number}: not JSON ({exc})") from exc


def iter_texts(artifact_path: Path) -> Iterator[str]:
    """Just the text of every document, in order (what a trainer or evaluator consumes)."""
    for document in iter_documents(artifact_path):
        yield document["text"]
