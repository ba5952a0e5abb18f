"""Which engine serves a model: the fastest one whose check passed, for exactly the bytes it checked.

The candidates are the model's ``engine-check`` artifacts that passed, fastest
decode first (as measured by the check, on the machine that ran it). One is
skipped, with the reason kept, when its backend is not installed here, its
installed version differs from the one checked, or the conversion it loads does
not hash to what the check recorded. When none is left the model runs on
``hf``; the reasons say why, so a slow path is never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from breedlab.engines import Engine, EngineUnavailable, ModelFolder, get_backend
from breedlab.engines.hf import folder_quantization
from breedlab.engines.loading import folder_engine, model_folder
from breedlab.evaluation.engine_check import CHECK_KIND
from breedlab.registry import Artifact, Registry


@dataclass(frozen=True)
class Candidate:
    backend: str
    quantization: str
    check: str
    """The engine-check artifact id."""
    version: str
    files: dict[str, str]
    decode_tok_s: float


@dataclass
class Chosen:
    engine: Engine | None
    check: str | None
    """The check that lets this engine serve; None for the hf reference."""
    skipped: list[str] = field(default_factory=list)
    """Why each faster candidate was not used."""


def passing_candidates(registry: Registry, model_id: str) -> list[Candidate]:
    """The model's passed checks, fastest decode first."""
    found = []
    for check in map(registry.get, registry.children(model_id, kind=CHECK_KIND)):
        metrics, recipe = check.manifest.metrics, check.manifest.recipe
        if metrics.get("passed"):
            found.append(Candidate(recipe["backend"], recipe["quantization"], check.id, recipe["backend_version"],
                                   dict(recipe.get("engine_files", {})), float(metrics.get("decode_tok_s", 0.0))))
    return sorted(found, key=lambda c: -c.decode_tok_s)


def checked_engine(registry: Registry, folder: ModelFolder, home_cache: Path, *, threads: int = 2) -> Chosen:
    """The fastest engine whose passed check still holds for ``folder`` (a verified model folder); ``engine``
    None when there is none, ``skipped`` saying why each faster one was not used."""
    skipped = []
    for candidate in passing_candidates(registry, folder.id):
        label = f"{candidate.backend}/{candidate.quantization} (check {candidate.check[:12]})"
        try:
            installed = get_backend(candidate.backend).version()
            if installed != candidate.version:
                raise EngineUnavailable(f"checked on {candidate.version}, {installed} is installed")
            engine = folder_engine(folder, candidate.backend, candidate.quantization, home_cache, threads=threads)
        except (EngineUnavailable, OSError, ValueError, RuntimeError) as error:
            skipped.append(f"{label}: {error}")
            continue
        if engine.files != candidate.files:
            engine.close()
            skipped.append(f"{label}: its converted files do not hash to what the check recorded")
            continue
        return Chosen(engine, candidate.check, skipped)
    return Chosen(None, None, skipped)


def serving_engine(registry: Registry, artifact: Artifact, home_cache: Path, *, threads: int = 2,
                   fast: bool = True) -> Chosen:
    """The engine ``artifact`` is served on: ``checked_engine``, else (or with ``fast=False``) the hf reference."""
    folder = model_folder(artifact)
    chosen = checked_engine(registry, folder, home_cache, threads=threads) if fast else Chosen(None, None)
    if chosen.engine is None:
        chosen.engine = folder_engine(folder, "hf", folder_quantization(folder), home_cache, threads=threads)
    return chosen
