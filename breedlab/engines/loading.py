"""From a registered model to a running engine: verify the folder, then let the backend load it."""

from __future__ import annotations

import json
from pathlib import Path

from breedlab.engines.base import Engine, EngineUnavailable, ModelFolder, get_backend
from breedlab.models.io import refuse_pickles, verify_files
from breedlab.registry import MODEL_KINDS, Artifact


def model_folder(artifact: Artifact, *, verified: bool = False) -> ModelFolder:
    """The artifact's folder, every file re-hashed against its manifest and no pickle in it (``verified``:
    the caller has just done both, e.g. ``load_candidate``, and the bytes are not read again)."""
    if artifact.manifest.kind not in MODEL_KINDS:
        raise ValueError(f"{artifact.id[:12]} is a {artifact.manifest.kind}, not a model")
    if not verified:
        refuse_pickles(artifact.path)
        verify_files(artifact.path, {name: entry.sha256 for name, entry in artifact.manifest.files.items()})
    config = json.loads((artifact.path / "config.json").read_text())
    return ModelFolder(id=artifact.id, path=Path(artifact.path), config=config, kind=artifact.manifest.kind,
                       recipe=dict(artifact.manifest.recipe), parents=tuple(artifact.manifest.parents))


def engine_cache(home_cache: Path, backend: str, model_id: str, quantization: str) -> Path:
    """Where a backend keeps its conversion of one model at one quantization (re-creatable, hashed)."""
    return Path(home_cache) / "engines" / backend / f"{model_id[:16]}-{quantization}"


def load_engine(artifact: Artifact, backend: str, quantization: str, home_cache: Path, *,
                threads: int = 2) -> Engine:
    """A ready engine, or EngineUnavailable naming why this backend cannot run this model."""
    return folder_engine(model_folder(artifact), backend, quantization, home_cache, threads=threads)


def folder_engine(folder: ModelFolder, backend: str, quantization: str, home_cache: Path, *,
                  threads: int = 2) -> Engine:
    """``load_engine`` on a folder already verified (several engines of one model: its bytes hashed once)."""
    found = get_backend(backend)
    reason = found.unsupported(folder, quantization)
    if reason is not None:
        raise EngineUnavailable(f"{backend} cannot run {folder.id[:12]} at {quantization}: {reason}")
    return found.load(folder, quantization, engine_cache(home_cache, backend, folder.id, quantization),
                      threads=threads)
