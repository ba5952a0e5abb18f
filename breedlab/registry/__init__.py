"""The breedlab registry: content-addressed artifacts with verifiable lineage."""

from breedlab.registry.errors import (
    ManifestError,
    NotFoundError,
    RegistryError,
    TransitionError,
    UnsafeFileError,
)
from breedlab.registry.events import Event
from breedlab.registry.lifecycle import STATES, TRANSITIONS
from breedlab.registry.manifest import KINDS, MODEL_KINDS, FileEntry, Manifest
from breedlab.registry.store import Artifact, Registry
from breedlab.registry.verify import Finding, verify

__all__ = [
    "Artifact", "Event", "FileEntry", "Finding", "KINDS", "MODEL_KINDS", "Manifest",
    "ManifestError", "NotFoundError", "Registry", "RegistryError", "STATES", "TRANSITIONS",
    "TransitionError", "UnsafeFileError", "verify",
]
