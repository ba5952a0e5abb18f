"""The engine interface: one loaded model that prefills, decodes with a KV cache, streams and scores.

A backend (``hf``, ``llamacpp``, ``ctranslate2``) is a plug-in registered with
:func:`backend`. It declares what it can run (:meth:`Backend.unsupported`
returns the reason it cannot, or None) and loads a model folder into an
:class:`Engine`. Every engine speaks token ids from the model's own HF
tokenizer, so prompts, stop handling and suites are identical across engines;
only the arithmetic differs, and :mod:`breedlab.evaluation.engine_check`
measures by how much before a backend may serve.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from breedlab.engines.sampling import Sampling, pick

BACKENDS: dict[str, type["Backend"]] = {}
PLUGINS = ("breedlab.engines.hf", "breedlab.engines.llamacpp", "breedlab.engines.ctranslate2_backend")


class EngineUnavailable(Exception):
    """A backend cannot run this model (or is not installed); the message says why."""


def backend(cls: type["Backend"]) -> type["Backend"]:
    """Register a backend class under its ``name``."""
    BACKENDS[cls.name] = cls
    return cls


def importable(module: str) -> bool:
    """Whether an optional backend library imports here (a backend without it says so and is not used)."""
    import importlib

    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def load_plugins() -> None:
    """Import every shipped backend (each registers itself); optional libraries load only when used."""
    import importlib

    for module in PLUGINS:
        importlib.import_module(module)


def get_backend(name: str) -> "Backend":
    load_plugins()
    if name not in BACKENDS:
        raise EngineUnavailable(f"unknown engine backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]()


@dataclass(frozen=True)
class ModelFolder:
    """What a backend is given: a verified model folder and what it is."""

    id: str
    path: Path
    config: dict
    """The folder's config.json."""
    kind: str
    """The artifact kind (``quantized`` artifacts hold breedlab's own int8/fp16 weights)."""
    recipe: dict
    """The artifact's recipe (a quantized artifact's scheme is there)."""
    parents: tuple[str, ...] = ()

    @property
    def has_domain_head(self) -> bool:
        return (self.path / "domain_head.safetensors").is_file()


class Backend(ABC):
    """A way to run models. ``quantizations`` lists what it can load; the first is exact (fp32)."""

    name: str = ""
    quantizations: tuple[str, ...] = ()
    architectures: tuple[str, ...] = ()
    """HF architectures it runs."""
    supports: str = ""
    """In words, what else it runs or does not (non-uniform shapes, the domain head, breedlab's own
    quantized artifacts); ``unsupported`` is the check, this is what ``breedlab engines backends`` shows."""

    @abstractmethod
    def version(self) -> str:
        """The installed library's version (checks are tied to it)."""

    @abstractmethod
    def unsupported(self, folder: ModelFolder, quantization: str) -> str | None:
        """Why this backend cannot run ``folder`` at ``quantization``; None when it can."""

    @abstractmethod
    def load(self, folder: ModelFolder, quantization: str, cache: Path, *, threads: int) -> "Engine":
        """Load (converting into ``cache`` first if needed) and return a ready engine."""


class Engine(ABC):
    """One model on one backend at one quantization."""

    backend: str
    quantization: str
    files: dict[str, str]
    """Converted files this engine runs (relative name -> sha256); empty when it reads the folder itself."""
    context: int | None = None
    """Positions one sequence may have on this engine (prompt + answer), when it is below the model's."""

    @abstractmethod
    def token_ids(self, prompt_ids: list[int], sampling: Sampling, cancel: threading.Event) -> Iterator[int]:
        """Next-token ids after ``prompt_ids`` (prefill once, then one cached decode step each), until cancelled."""

    @abstractmethod
    def logits(self, ids: list[int]) -> torch.Tensor:
        """(T, V) float32 next-token logits at every position of ``ids`` (a fresh sequence)."""

    def nll(self, ids: list[int]) -> list[float]:
        """Per-position next-token NLL (nats) of ``ids``: T - 1 values."""
        logits = self.logits(ids)[:-1].double()  # (T-1, V)
        targets = torch.tensor(ids[1:], dtype=torch.long)
        return torch.nn.functional.cross_entropy(logits, targets, reduction="none").tolist()

    def close(self) -> None:
        """Release native resources (a no-op where garbage collection suffices)."""
        return None


class LogitsEngine(Engine):
    """An engine whose decode step returns the next-token logits; sampling is breedlab's own ``pick``."""

    @abstractmethod
    def _session(self) -> "DecodeSession":
        """A fresh KV cache for one sequence (released by its ``close``)."""

    def token_ids(self, prompt_ids: list[int], sampling: Sampling, cancel: threading.Event) -> Iterator[int]:
        import time

        generator = torch.Generator().manual_seed(sampling.seed)
        session = self._session()
        try:
            feed = list(prompt_ids)
            for _ in range(sampling.max_new_tokens):
                if cancel.is_set() or (sampling.deadline is not None and time.monotonic() > sampling.deadline):
                    return
                token = pick(session.feed(feed), sampling, generator)  # (V,) logits after the fed ids
                yield token
                feed = [token]
        finally:
            session.close()


class DecodeSession(ABC):
    """One sequence's KV cache on one engine."""

    @abstractmethod
    def feed(self, ids: list[int]) -> torch.Tensor:
        """Append ``ids`` to the sequence; the (V,) float32 logits after the last one."""

    def close(self) -> None:
        """Give the KV cache back (a no-op where garbage collection suffices)."""
        return None
