"""Canonical JSON and sha256: the basis of every identity in the registry.

An id is the sha256 of canonical JSON (sorted keys, fixed separators, UTF-8,
no NaN): the same content always gives the same bytes, so the same id.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, BinaryIO

CHUNK = 1 << 20  # 1 MiB reads keep hashing a 500 MB weight file in constant memory


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, ``(",", ":")`` separators, no NaN/Infinity."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_bytes(canonical_json(value))


def sha256_stream(stream: BinaryIO) -> str:
    digest = hashlib.sha256()
    while block := stream.read(CHUNK):
        digest.update(block)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    with open(path, "rb") as stream:
        return sha256_stream(stream)


_SHA256 = re.compile(r"[0-9a-f]{64}")


def is_sha256(text: str) -> bool:
    return isinstance(text, str) and _SHA256.fullmatch(text) is not None  # called per object: verify's hot path
