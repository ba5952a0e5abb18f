"""``pip-package-files``: data files shipped inside an installed Python distribution.

Files are found through the distribution's own file list (``importlib.metadata``),
never the working directory, so the same package gives the same files wherever
the venv lives. Nothing is installed here: a missing package is reported with
the ``pip install`` command that would provide it.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from breedlab.data.cleaning import pack_items
from breedlab.data.parsers import PARSERS, check_parser
from breedlab.data.sources.registry import FetchedSource, RawDoc, SourceContext, SourceUnavailable, source

PIP_PARSERS = ("text", "obo-defs", "icd10-xml")


@dataclass(frozen=True)
class PipFilesParams:
    """Data files of one installed distribution and how to parse them."""

    package: str
    """Distribution name as pip knows it, e.g. ``spdx`` or ``simple-icd-10-cm``."""
    files: tuple[str, ...]
    """Globs over the distribution's file list, e.g. ``spdx/data/*.txt``."""
    parser: str = "text"
    """How to read each file: ``text`` (one document per file), ``obo-defs``, ``icd10-xml``."""
    version: str = ""
    """Required installed version (empty: any); recorded in the recipe either way."""
    group_chars: int = 0
    """Pack consecutive short items into documents of about this many characters (0: no packing)."""

    def __post_init__(self) -> None:
        check_parser(self.parser, PIP_PARSERS)

    def label(self) -> str:
        return f"pip:{self.package}"

    def fetch_command(self) -> str:
        return f"pip install {self.package}=={self.version}" if self.version else f"pip install {self.package}"


def matching_files(dist: importlib.metadata.Distribution, patterns: tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(path inside the distribution, absolute path)`` of files matching any pattern, sorted."""
    found = []
    for entry in dist.files or ():
        rel = Path(str(entry)).as_posix()
        if any(fnmatch.fnmatchcase(rel, pattern) for pattern in patterns):
            found.append((rel, Path(str(dist.locate_file(entry)))))
    return sorted(found)


@source("pip-package-files", params=PipFilesParams)
def fetch_pip_package_files(params: PipFilesParams, ctx: SourceContext) -> FetchedSource:
    name, command = params.label(), params.fetch_command()
    try:
        dist = importlib.metadata.distribution(params.package)
    except importlib.metadata.PackageNotFoundError:
        raise SourceUnavailable(name, command, f"package {params.package!r} is not installed") from None
    if params.version and dist.version != params.version:
        raise SourceUnavailable(name, command, f"installed version is {dist.version}, not {params.version}")
    files = [(rel, path) for rel, path in matching_files(dist, params.files) if path.is_file()]
    if not files:
        reason = f"no files match {list(params.files)} in {params.package} {dist.version}"
        raise SourceUnavailable(name, command, reason)
    parse = PARSERS[params.parser]

    def read() -> Iterator[RawDoc]:
        for rel, path in ctx.track(files, f"{name} files", len(files)):
            items = pack_items(parse(path, rel), params.group_chars)
            for item_id, text in items:
                yield RawDoc(id=f"{params.package}:{item_id}", text=text)

    return FetchedSource(versions={params.package: dist.version}, read=read)
