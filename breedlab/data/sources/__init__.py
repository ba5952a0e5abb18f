"""Source types: where domain text comes from. Importing this package registers them all.

A new source type is one module with a parameter dataclass and a function
decorated ``@source("my-name", params=MyParams)``; add its import below.
"""

from breedlab.data.sources import debian, local_files, npm, pip_files, stdlib  # noqa: F401  (imported to register)
from breedlab.data.sources.registry import (
    FetchedSource,
    RawDoc,
    SourceContext,
    SourceType,
    SourceTypeError,
    SourceUnavailable,
    get_source_type,
    source,
    source_type_names,
)

__all__ = [
    "FetchedSource",
    "RawDoc",
    "SourceContext",
    "SourceType",
    "SourceTypeError",
    "SourceUnavailable",
    "get_source_type",
    "source",
    "source_type_names",
]
