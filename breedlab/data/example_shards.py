"""Example datasets on disk: one JSONL shard, an example a line, byte-identical for the same examples.

Each line: ``id, domain, source, text`` as in a document shard (``text`` is the user's input, so
anything that reads a split's texts, the monitor or the router, sees what a user would send),
then ``messages`` (the prompt), ``output`` and ``sources``. Examples in id order.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from breedlab.data.examples import Example
from breedlab.data.read import iter_documents


def write_example_shard(examples: list[Example], domain: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as stream:
        for example in sorted(examples, key=lambda e: e.id):
            record = {"id": example.id, "domain": domain, "source": "examples", "text": example.input,
                      **example.record()}
            stream.write(json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n")
    return path


def iter_examples(artifact_path: Path) -> Iterator[Example]:
    """Every example of a registered ``<niche>/examples/<split>`` dataset, in id order."""
    for record in iter_documents(artifact_path):
        if "output" not in record:
            raise ValueError(f"{artifact_path}: {record.get('id')} is a document, not an example")
        yield Example.from_record(record)
