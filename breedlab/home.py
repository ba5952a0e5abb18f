"""The breedlab home folder: every piece of state lives under one root.

Resolution order: an explicit ``--home`` path, then ``$BREEDLAB_HOME``, then
``~/.cache/breedlab``. Nothing outside this folder is written by breedlab
(besides what pip/apt/npm put in their own caches when fetching sources).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from breedlab.typed_config import use_home_configs

DEFAULT_HOME = Path("~/.cache/breedlab")
HOME_ENV = "BREEDLAB_HOME"


@dataclass(frozen=True)
class Home:
    """Paths below the breedlab home folder."""

    root: Path

    @classmethod
    def resolve(cls, path: Path | str | None = None) -> "Home":
        """``path`` if given, else ``$BREEDLAB_HOME``, else ``~/.cache/breedlab``."""
        chosen = path or os.environ.get(HOME_ENV) or DEFAULT_HOME
        root = Path(chosen).expanduser().resolve()
        root.mkdir(parents=True, exist_ok=True)
        use_home_configs(root)  # this process now reads its configs with the home's overrides
        return cls(root)

    @property
    def registry_dir(self) -> Path:
        """Content-addressed objects, manifests, the event log and the index."""
        return self.root / "registry"

    @property
    def cache_dir(self) -> Path:
        """Re-creatable downloads and intermediate files (safe to delete)."""
        return self._sub("cache")

    @property
    def logs_dir(self) -> Path:
        return self._sub("logs")

    def _sub(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True)
        return path
