"""Refuse pickles by content, not only by name.

A pickle can hide behind any extension, and ``torch.save`` files are zip
archives with a ``data.pkl`` inside. Nothing here ever unpickles: it reads the
first bytes, a safetensors header (JSON) or a zip's member names.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from breedlab.registry.errors import RegistryError, UnsafeFileError
from breedlab.registry.manifest import check_file_name

PICKLE_SUFFIXES = frozenset({".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"})
ZIP_MAGIC = b"PK\x03\x04"
# A safetensors header is JSON; anything claiming more than this is not one.
MAX_SAFETENSORS_HEADER = 100 * 1024 * 1024


def is_valid_safetensors(path: Path) -> bool:
    """True when the file is structurally safetensors: a u64 length, then a JSON object."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if size < 8 or header_len > min(size - 8, MAX_SAFETENSORS_HEADER):
            return False
        try:
            header = json.loads(handle.read(header_len))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False
    return isinstance(header, dict)


def pickle_reason(path: Path, name: str | None = None) -> str | None:
    """Why the file must not be stored or loaded, or None if it is not a pickle."""
    suffix = Path(name or path.name).suffix.lower()
    if suffix in PICKLE_SUFFIXES:
        return f"its extension {suffix!r} is a pickle-based checkpoint format"
    with open(path, "rb") as handle:
        head = handle.read(4)
    # Pickle protocols 2-5 open with PROTO (0x80) and the protocol number. A
    # safetensors length prefix can start with the same two bytes (a header of
    # 0x0280 bytes, say), so a structurally valid safetensors file is exempt.
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        if not (suffix == ".safetensors" and is_valid_safetensors(path)):
            return f"it starts with a pickle header (protocol {head[1]})"
    if head == ZIP_MAGIC and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            if any(member.endswith(".pkl") for member in archive.namelist()):
                return "it is a torch zip checkpoint (contains a pickle such as data.pkl)"
    if suffix == ".safetensors" and not is_valid_safetensors(path):
        return "it is named .safetensors but is not a valid safetensors file"
    return None


def refuse_pickle(path: Path, name: str) -> None:
    reason = pickle_reason(path, name)
    if reason is not None:
        raise UnsafeFileError(
            f"refused {name!r}: {reason} (it was not unpickled); breedlab stores and loads safetensors only"
        )


def checked_sources(files) -> dict[str, Path]:
    """``files`` (relative name -> path) with every name valid and no pickle, before anything is written."""
    if not files:
        raise RegistryError("an artifact needs at least one file")
    sources = {}
    for rel, path in files.items():
        check_file_name(rel)
        path = Path(path)
        if not path.is_file():
            raise RegistryError(f"cannot register {rel!r}: {path} is not a file")
        refuse_pickle(path, rel)
        sources[rel] = path
    return sources
