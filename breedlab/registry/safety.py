"""Refuse pickles by content, not only by name.

A pickle can hide behind any extension, and ``torch.save`` files are zip
archives with a ``data.pkl`` inside. Neither is ever opened with pickle here:
this only looks at the first bytes and, for zips, the member names.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from .errors import UnsafeFileError

PICKLE_PROTOCOL_MARKERS = {bytes([0x80, proto]) for proto in range(2, 6)}
ZIP_MAGIC = b"PK\x03\x04"


def looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as stream:
        head = stream.read(4)
    if head[:2] in PICKLE_PROTOCOL_MARKERS:
        return True
    if head == ZIP_MAGIC:
        try:
            with zipfile.ZipFile(path) as archive:
                return any(name.endswith(".pkl") for name in archive.namelist())
        except zipfile.BadZipFile:
            return False
    return False


def refuse_pickle(path: Path, name: str) -> None:
    if looks_like_pickle(path):
        raise UnsafeFileError(
            f"refused {name!r}: its content is a pickle (it was not unpickled); "
            "breedlab stores and loads safetensors only"
        )
