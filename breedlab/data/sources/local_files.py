"""``local-files``: a user's own folders, globs and files of text, read where they lie (never copied out).

Code, Markdown and plain text are read as they are; HTML is reduced to its visible text
(``render.render_html``). A file that is binary (a NUL byte in its first 8 KiB, or not
UTF-8) is skipped and named in the build's notes, as is one over ``max_file_bytes``.
The source's version is the sha256 of every kept file's path and content hash, so the
same files give the same recipe and so the same dataset ids, and any edit rebuilds.
"""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from breedlab.data.render import render_html
from breedlab.data.sources.registry import FetchedSource, RawDoc, SourceContext, SourceUnavailable, source

HTML_SUFFIXES = (".html", ".htm", ".xhtml")
SKIP_DIRS = (".git", ".hg", ".svn", "__pycache__", "node_modules", ".venv", "venv", ".mypy_cache", ".tox")
SNIFF_BYTES = 8192


@dataclass(frozen=True)
class LocalFilesParams:
    """Which local files become documents."""

    paths: tuple[str, ...]
    """Folders (read recursively), glob patterns or files."""
    max_file_bytes: int = 2_000_000
    """Larger files are skipped and named (a dump or a data file, not writing)."""

    def label(self) -> str:
        return "local-files"

    def fetch_command(self) -> str:
        return "nothing to fetch: check that the paths exist and are readable"


def expand(paths: tuple[str, ...]) -> list[Path]:
    """Every file the paths name (folders recursively, globs expanded), unique and sorted."""
    found: set[Path] = set()
    for given in paths:
        matches = [Path(p) for p in glob.glob(str(Path(given).expanduser()), recursive=True)] or [Path(given)]
        for match in matches:
            if match.is_dir():
                found.update(p for p in match.rglob("*") if p.is_file() and not set(p.parts) & set(SKIP_DIRS))
            elif match.is_file():
                found.add(match)
    return sorted(p.resolve() for p in found)


def read_text_file(path: Path, max_bytes: int) -> str | None:
    """The file's text (HTML reduced to visible text), or None when it is binary or too large."""
    data = path.read_bytes()
    if len(data) > max_bytes or b"\0" in data[:SNIFF_BYTES]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return render_html(text) if path.suffix.lower() in HTML_SUFFIXES else text


@source("local-files", params=LocalFilesParams)
def fetch_local_files(params: LocalFilesParams, ctx: SourceContext) -> FetchedSource:
    files = expand(params.paths)
    if not files:
        raise SourceUnavailable(params.label(), params.fetch_command(), f"no files at {', '.join(params.paths)}")
    digest = hashlib.sha256()
    for path in files:
        digest.update(f"{path}\0{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    root = Path(_common_root(files))

    def read() -> Iterator[RawDoc]:
        for path in ctx.track(files, "local files", len(files)):
            text = read_text_file(path, params.max_file_bytes)
            if text is None:
                ctx.notes.append(f"skipped binary or oversized file: {path}")
                continue
            yield RawDoc(id=f"local:{path.relative_to(root).as_posix()}", text=text)

    return FetchedSource(versions={"files": digest.hexdigest(), "count": str(len(files))}, read=read)


def _common_root(files: list[Path]) -> str:
    import os

    return os.path.commonpath([str(p.parent) for p in files])
