"""Engines: where a registered model runs (``hf`` exact reference, ``llamacpp``, ``ctranslate2``).

The layer sits under evaluation (which checks an engine against ``hf`` before
it may serve, and measures latency on it) and over the operators and the CMG
(whose loaders and domain head the ``hf`` engine uses). See ``base.py`` for the
interface and each backend's module for what it supports.
"""

from breedlab.engines.base import (
    BACKENDS,
    Backend,
    Engine,
    EngineUnavailable,
    ModelFolder,
    get_backend,
    load_plugins,
)
from breedlab.engines.sampling import Sampling, pick

__all__ = ["BACKENDS", "Backend", "Engine", "EngineUnavailable", "ModelFolder", "Sampling", "get_backend",
           "load_plugins", "pick"]
