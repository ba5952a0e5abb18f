"""Small builders shared by the registry tests (no models needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from breedlab.registry import Registry


def write_file(directory: Path, name: str, content: bytes) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def safetensors_bytes(payload: bytes) -> bytes:
    """A valid one-tensor safetensors file (dtype U8) holding ``payload``."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [len(payload)], "data_offsets": [0, len(payload)]}})
    return len(header).to_bytes(8, "little") + header.encode() + payload


def register_weights(reg: Registry, tmp: Path, name: str = "pico", content: bytes = b"w" * 4096,
                     kind: str = "parent", parents=(), actor: str = "breedlab"):
    weights = write_file(tmp / name, "model.safetensors", safetensors_bytes(content))
    config = write_file(tmp / name, "config.json", b'{"model_type": "llama"}')
    return reg.register(kind, name, {"model.safetensors": weights, "config.json": config},
                        operator="import", recipe={"source": "test"}, parents=parents, actor=actor)


def snapshot(root: Path) -> dict[str, int]:
    """Every file below ``root`` with its size: equal snapshots mean nothing was written."""
    return {
        str(path.relative_to(root)): path.stat().st_size
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != "lock"
    }


def make_writable(path: Path) -> None:
    os.chmod(path, 0o644)
