"""Resumable training checkpoints in safetensors (no pickle, even for optimiser state).

A checkpoint is a folder ``step-<n>`` holding the trainable tensors, the AdamW
moments and a JSON state (step, curve so far). It is written under a temp name
and renamed into place, then ``latest`` (a one-line file) is replaced
atomically, so a breed killed mid-save resumes from the previous checkpoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from breedlab.registry.atomic import TMP_PREFIX, atomic_write_bytes, fsync_dir

LATEST = "latest"


def save_checkpoint(directory: Path, step: int, params: dict[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=directory))
    save_file({name: p.detach().contiguous() for name, p in params.items()}, staging / "trainable.safetensors")
    save_file(_optimizer_tensors(params, optimizer), staging / "optimizer.safetensors")
    (staging / "state.json").write_text(json.dumps({**state, "step": step}, sort_keys=True))
    final = directory / f"step-{step:07d}"
    if final.exists():
        shutil.rmtree(final)
    staging.rename(final)
    fsync_dir(directory)
    atomic_write_bytes(directory / LATEST, f"{final.name}\n".encode())
    for old in directory.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(directory: Path, params: dict[str, torch.nn.Parameter],
                    optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Restore params and optimiser moments in place; return the saved state, or None if none."""
    pointer = directory / LATEST
    if not pointer.is_file():
        return None
    folder = directory / pointer.read_text().strip()
    weights = load_file(folder / "trainable.safetensors")
    if set(weights) != set(params):
        raise ValueError(f"checkpoint {folder} does not match this model's trainable parameters")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name])
    _restore_optimizer(params, optimizer, load_file(folder / "optimizer.safetensors"))
    return json.loads((folder / "state.json").read_text())


def _optimizer_tensors(params: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> dict:
    tensors = {}
    for name, param in params.items():
        for key, value in optimizer.state.get(param, {}).items():
            tensors[f"{name}::{key}"] = torch.as_tensor(value).detach().clone().contiguous()
    return tensors


def _restore_optimizer(params: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                       tensors: dict[str, torch.Tensor]) -> None:
    for name, param in params.items():
        state = {key.split("::", 1)[1]: value for key, value in tensors.items() if key.split("::", 1)[0] == name}
        if state:
            optimizer.state[param] = state
