"""Errors raised by the registry. Each message names the artifact or file at fault."""


class RegistryError(Exception):
    """Base class: anything the registry refuses or cannot do."""


class ManifestError(RegistryError):
    """A manifest is malformed, of an unknown kind, or does not match its id."""


class UnsafeFileError(RegistryError):
    """A file would escape the artifact (path traversal) or is a pickle."""


class NotFoundError(RegistryError):
    """No artifact matches the id or prefix given."""


class TransitionError(RegistryError):
    """A lifecycle state change that the transition table does not allow."""
