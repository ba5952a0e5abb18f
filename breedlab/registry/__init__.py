"""The breedlab registry: content-addressed artifacts with verifiable lineage."""

from .errors import (
    ManifestError, NotFoundError, RegistryError, TransitionError, UnsafeFileError,
)
from .events import Event
from .lifecycle import STATES, TRANSITIONS
from .manifest import KINDS, MODEL_KINDS, FileEntry, Manifest
from .store import Artifact, Registry
from .verify import Finding, verify

__all__ = [
    "Artifact", "Event", "FileEntry", "Finding", "KINDS", "MODEL_KINDS", "Manifest",
    "ManifestError", "NotFoundError", "Registry", "RegistryError", "STATES", "TRANSITIONS",
    "TransitionError", "UnsafeFileError", "verify",
]
