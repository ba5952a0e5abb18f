"""JSONL shards: the on-disk form of a dataset split, byte-identical for the same input.

One JSON object per line, keys in the fixed order ``id, domain, source, text``,
UTF-8 without ASCII escaping, ``\\n`` line ends, documents in id order, and
``shard_docs`` documents per file named ``shard-00000.jsonl``, ``shard-00001.jsonl``...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

from breedlab.data.cleaning import Document

SHARD_PATTERN = "shard-{index:05d}.jsonl"
CHARS_PER_TOKEN = 4  # rough English/code average for a BPE vocabulary; good enough for sizing


def document_line(doc: Document, domain: str) -> str:
    """One JSONL line (with its newline) for ``doc``."""
    record = {"id": doc.id, "domain": domain, "source": doc.source, "text": doc.text}
    return json.dumps(record, ensure_ascii=False, separators=(", ", ": ")) + "\n"


def write_shards(docs: Sequence[Document], domain: str, out_dir: Path, shard_docs: int) -> dict[str, Path]:
    """Write ``docs`` (sorted by id here) as shards in ``out_dir``; return ``{file name: path}``.

    An empty split still gets one empty shard, so every split is a registrable artifact.
    """
    if shard_docs <= 0:
        raise ValueError(f"shard_docs must be positive, got {shard_docs}")
    out_dir.mkdir(parents=True, exist_ok=True)
    ordered = sorted(docs, key=lambda d: d.id)
    files: dict[str, Path] = {}
    for index, start in enumerate(range(0, max(len(ordered), 1), shard_docs)):
        name = SHARD_PATTERN.format(index=index)
        path = out_dir / name
        with open(path, "w", encoding="utf-8", newline="\n") as stream:
            stream.writelines(document_line(doc, domain) for doc in ordered[start : start + shard_docs])
        files[name] = path
    return files


def split_stats(docs: Sequence[Document], shards: int) -> dict[str, int]:
    """Size of one split: documents, characters, approximate tokens, shard files, sources."""
    chars = sum(len(doc.text) for doc in docs)
    return {
        "docs": len(docs),
        "chars": chars,
        "approx_tokens": chars // CHARS_PER_TOKEN,
        "shards": shards,
        "source_documents": len({doc.group for doc in docs}),
    }
