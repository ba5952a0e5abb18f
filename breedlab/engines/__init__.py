"""Engines: where a registered model runs (``hf`` exact reference, ``llamacpp``, ``ctranslate2``).

The layer sits under evaluation (which checks an engine against ``hf`` before
it may serve, and measures latency on it) and over the operators and the CMG
(whose loaders and domain head the ``hf`` engine uses). See ``base.py`` for the
interface and each backend's module for what it supports.
"""

from breedlab.engines.base import BACKENDS, Backend, Engine, EngineUnavailable, ModelFolder, get_backend
from breedlab.engines.sampling import Sampling, pick

PLUGINS = ("breedlab.engines.hf", "breedlab.engines.llamacpp", "breedlab.engines.ctranslate2_backend")


def load_plugins() -> None:
    """Import every shipped backend (each registers itself); optional libraries load only when used."""
    import importlib

    for module in PLUGINS:
        importlib.import_module(module)


__all__ = ["BACKENDS", "Backend", "Engine", "EngineUnavailable", "ModelFolder", "Sampling", "get_backend",
           "load_plugins", "pick"]
