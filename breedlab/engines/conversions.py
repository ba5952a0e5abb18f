"""A backend's conversion of one model, cached in the home and re-made rather than trusted when it changed.

``export.json`` sits beside the converted files and records what made them (the ``stamp``: the
source model's id, the quantization, the writer's version) and every file's sha256. A conversion
is reused only when the stamp is the same and every file still hashes to its record; otherwise the
record goes first and the conversion is made again, so a process killed halfway leaves no record
and the next load converts. The files' hashes are what an engine check vouches for.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from breedlab.registry.atomic import TMP_PREFIX, atomic_write_bytes
from breedlab.registry.canonical import sha256_file

FACTS_NAME = "export.json"


def converted_files(root: Path) -> dict[str, str]:
    """sha256 of every file a conversion left in ``root`` (not its record, not a half-written temp file)."""
    if not root.is_dir():
        return {}
    return {p.name: sha256_file(p) for p in sorted(root.iterdir())
            if p.is_file() and p.name != FACTS_NAME and not p.name.startswith(TMP_PREFIX)}


def cached_conversion(cache: Path, root: Path, stamp: dict, convert: Callable[[], dict]) -> dict[str, str]:
    """The files (name -> sha256) of the conversion in ``root``, made by ``convert()`` unless the one recorded
    in ``cache/export.json`` has ``stamp`` and its files are unchanged; ``convert`` returns facts to record."""
    facts_path = cache / FACTS_NAME
    if facts_path.is_file():
        facts = json.loads(facts_path.read_text())
        if all(facts.get(key) == value for key, value in stamp.items()) and converted_files(root) == facts.get("files"):
            return facts["files"]
        facts_path.unlink()  # stale or damaged: the record goes first, so a crash from here re-converts
    cache.mkdir(parents=True, exist_ok=True)
    facts = convert()
    files = converted_files(root)
    atomic_write_bytes(facts_path, json.dumps({**facts, **stamp, "files": files}, indent=1, sort_keys=True).encode())
    return files
