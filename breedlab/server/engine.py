"""Loaded models for the server: load once (every file re-hashed), fall back to the parent if a child will not load.

Each model generates on an engine (``evaluation.engine_choice``): the fastest
one whose recorded check against hf passed, else hf itself. The transformers
model is loaded too, whatever the engine: shadow and canary scoring, the task
monitor's gap and the detector read NLLs from it, so their numbers do not
depend on which engine answers. A faster engine that was skipped (not
installed, another version, its files changed) is logged with the reason.

``load_candidate`` re-hashes each file against its manifest, so a corrupted or
tampered child fails to load here instead of serving garbage. Such a child is
remembered as broken (no re-hash on every request), its traffic is served by
the parent, and one ``serve-fallback`` event per child records why. The
parent has no fallback: if it does not load, the server does not start.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

from breedlab.engines import Engine
from breedlab.engines.hf import HFEngine
from breedlab.engines.loading import model_folder
from breedlab.evaluation.engine_choice import checked_engine
from breedlab.evaluation.measure import load_candidate
from breedlab.registry import Registry
from breedlab.server.generation import Generation, eos_ids

log = logging.getLogger("breedlab.server")


@dataclass(frozen=True)
class Loaded:
    """A model ready to generate; ``fallback`` says why it is the parent when another was asked for."""

    id: str
    model: object
    tokenizer: object
    context: int
    """Positions the model can attend over (prompt + answer)."""
    engine: Engine
    """What generates its answers (``engine.backend``, ``engine.quantization``)."""
    fallback: str | None = None
    engine_check: str | None = None
    """The engine-check artifact that lets ``engine`` serve; None on hf."""

    def generation(self, prompt_ids, sampling) -> Generation:
        """A generation of this model continuing ``prompt_ids`` (it ends at the tokenizer's EOS)."""
        return Generation(self.engine, self.tokenizer, list(prompt_ids), sampling, eos_ids(self.tokenizer))


class ModelHost:
    """Models by artifact id, loaded lazily and thread-safely."""

    def __init__(self, registry: Registry, parent_id: str, *, actor: str, on_fallback=None,
                 cache_dir: Path | None = None, engine: str = "hf", engine_threads: int = 2):
        self.registry, self.parent_id, self.actor = registry, parent_id, actor
        self.cache_dir, self.fast, self.engine_threads = cache_dir, engine == "fast" and cache_dir is not None, engine_threads
        self.on_fallback = on_fallback
        self.record_elsewhere = None
        """A read replica's way to have the writer record a fallback (it records nothing itself)."""
        """Called with (child id, reason) after a fallback is recorded (metrics)."""
        self._models: dict[str, Loaded] = {}
        self._broken: dict[str, str] = {}  # child id -> why it would not load
        self._lock = threading.Lock()

    def get(self, model_id: str) -> Loaded:
        """The model, or the parent (with ``fallback`` set) when a child fails to load."""
        loaded = self._models.get(model_id)
        if loaded is not None:
            return loaded
        if model_id in self._broken:
            return self._parent_instead(model_id, self._broken[model_id])
        with self._lock:  # one load per model even when requests race for it
            if model_id in self._models:
                return self._models[model_id]
            try:
                self._models[model_id] = self._load(model_id)
            except Exception as error:  # any load failure of a child: hash mismatch, missing file, bad config
                if model_id == self.parent_id:
                    raise
                self._broken[model_id] = f"{type(error).__name__}: {error}"
                self._record_fallback(model_id, self._broken[model_id])
                return self._parent_instead(model_id, self._broken[model_id])
            return self._models[model_id]

    def loaded_ids(self) -> list[str]:
        return list(self._models)

    def release(self, model_id: str) -> None:
        """Drop a model that no longer serves (rolled back, retired); a later request reloads it."""
        if model_id != self.parent_id:
            self._models.pop(model_id, None)
            self._broken.pop(model_id, None)

    def _load(self, model_id: str) -> Loaded:
        artifact = self.registry.get(model_id)
        model, tokenizer = load_candidate(artifact)
        model.eval()
        engine, check = HFEngine(model), None
        if self.fast:  # load_candidate has just verified the folder: it is not hashed again
            chosen = checked_engine(self.registry, model_folder(artifact, verified=True), self.cache_dir,
                                    threads=self.engine_threads)
            for reason in chosen.skipped:
                log.warning("model %s: a checked engine was skipped: %s", model_id[:12], reason)
            if chosen.engine is not None:
                engine, check = chosen.engine, chosen.check
        context = min(context_limit(model, tokenizer), engine.context or context_limit(model, tokenizer))
        return Loaded(model_id, model, tokenizer, context, engine, engine_check=check)

    def _parent_instead(self, model_id: str, reason: str) -> Loaded:
        parent = self.get(self.parent_id)
        return Loaded(parent.id, parent.model, parent.tokenizer, parent.context, parent.engine,
                      fallback=f"{model_id[:12]} failed to load ({reason}); the parent served instead",
                      engine_check=parent.engine_check)

    def _record_fallback(self, model_id: str, reason: str) -> None:
        log.warning("child %s failed to load, falling back to the parent: %s", model_id[:12], reason)
        try:
            if self.actor:
                self.registry.record("serve-fallback", model_id, actor=self.actor,
                                     reason=f"failed to load ({reason}); its traffic falls back to the parent",
                                     data={"parent": self.parent_id, "error": reason})
            elif self.record_elsewhere is not None:  # a read replica: the writer records it
                self.record_elsewhere(model_id, reason)
        except Exception as error:  # the warning event is best effort; serving the parent is not
            log.error("could not record serve-fallback for %s: %s", model_id[:12], error)
        if self.on_fallback is not None:
            self.on_fallback(model_id, reason)


def context_limit(model, tokenizer) -> int:
    """The model's position limit; the tokenizer's ``model_max_length`` when smaller and set."""
    positions = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
    declared = getattr(tokenizer, "model_max_length", None)
    if isinstance(declared, int) and 0 < declared < positions:
        return declared
    return positions
