"""The source-type plug-in registry: a table from a lower-case name to a fetch function.

A source type is a decorated function ``fetch(params, ctx) -> FetchedSource``
plus a parameter dataclass that the YAML config is checked against. Fetching
puts raw files under ``ctx.cache_dir`` and returns the versions it found (they
enter the dataset recipe) and a lazy document reader, so a build whose recipe
is already registered never parses anything.

A source that cannot be had raises :class:`SourceUnavailable` naming the exact
command that would fetch it; the build reports it and carries on.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

from rich.progress import Progress

NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


class SourceUnavailable(Exception):
    """A source could not be fetched or read; ``fetch_command`` says how to get it."""

    def __init__(self, name: str, fetch_command: str, reason: str):
        super().__init__(f"source {name!r} unavailable: {reason} (fetch it with: {fetch_command})")
        self.name = name
        self.fetch_command = fetch_command
        self.reason = reason


class SourceTypeError(ValueError):
    """A source type was registered twice, badly named, or asked for but unknown."""


class SourceParams(Protocol):
    """What every source type's parameter dataclass provides besides its fields."""

    def label(self) -> str:
        """Short name for reports, e.g. ``pip:spdx``."""
        ...

    def fetch_command(self) -> str:
        """The shell command that would fetch this source, e.g. ``pip install spdx==2.5.1``."""
        ...


@dataclass(frozen=True)
class RawDoc:
    """One document as a source yields it, before cleaning and chunking."""

    id: str
    """Stable and unique within the domain, e.g. ``spdx:MIT.txt``; it seeds the split."""
    text: str


@dataclass(frozen=True)
class FetchedSource:
    """A source whose raw files are on disk: its versions and a lazy document reader."""

    versions: dict[str, str]
    """Package/tool versions that determine the text (recorded in the recipe)."""
    read: Callable[[], Iterator[RawDoc]]
    """Parses the cached files; called only when the domain is actually rebuilt."""


@dataclass
class SourceContext:
    """Run options handed to a source type: where to cache and how to show progress."""

    cache_dir: Path
    """Folder for fetched and extracted raw files (``<home>/cache/sources``)."""
    progress: Progress | None = None
    """A running rich progress display, or None for silence."""
    notes: list[str] = field(default_factory=list)
    """Things worth telling the user that are not failures (e.g. ran ``apt-get update``)."""
    prefix: str = ""
    """Put before every progress description (the build sets it to the domain name)."""

    def _describe(self, description: str) -> str:
        return f"{self.prefix}: {description}" if self.prefix else description

    def track(self, items: Iterable[Any], description: str, total: int | None = None) -> Iterator[Any]:
        """Yield ``items``, advancing a progress bar when one is shown."""
        if self.progress is None:
            yield from items
            return
        task = self.progress.add_task(self._describe(description), total=total)
        try:
            for item in items:
                yield item
                self.progress.advance(task)
        finally:
            self.progress.remove_task(task)


    @contextmanager
    def status(self, description: str) -> Iterator[None]:
        """Show an indeterminate bar while a single long step runs (e.g. ``npm pack``)."""
        if self.progress is None:
            yield
            return
        task = self.progress.add_task(self._describe(description), total=None)
        try:
            yield
        finally:
            self.progress.remove_task(task)


@dataclass(frozen=True)
class SourceType:
    """A registered source type: its name, parameter dataclass and fetch function."""

    name: str
    params: type
    fetch: Callable[[Any, SourceContext], FetchedSource]


_SOURCE_TYPES: dict[str, SourceType] = {}


def source(name: str, *, params: type) -> Callable[[Callable], Callable]:
    """Register ``fetch(params, ctx) -> FetchedSource`` under the lower-case ``name``."""
    if not NAME_PATTERN.match(name):
        raise SourceTypeError(f"source type name {name!r} must be lower-case words joined by '-'")
    if not is_dataclass(params) or not all(hasattr(params, m) for m in ("label", "fetch_command")):
        raise SourceTypeError(f"source type {name!r}: params must be a dataclass with label() and fetch_command()")

    def register(fetch: Callable) -> Callable:
        if name in _SOURCE_TYPES:
            owner = _SOURCE_TYPES[name].fetch.__module__
            raise SourceTypeError(f"source type {name!r} is already registered (by {owner})")
        _SOURCE_TYPES[name] = SourceType(name=name, params=params, fetch=fetch)
        return fetch

    return register


def get_source_type(name: str) -> SourceType:
    """The registered source type ``name``; unknown names list the known ones."""
    try:
        return _SOURCE_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(_SOURCE_TYPES)) or "none"
        raise SourceTypeError(f"unknown source type {name!r}; known source types: {known}") from None


def source_type_names() -> list[str]:
    return sorted(_SOURCE_TYPES)


def unregister(name: str) -> None:
    """Remove a source type (tests register throw-away types and clean up after)."""
    _SOURCE_TYPES.pop(name, None)
