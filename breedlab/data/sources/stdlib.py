"""``python-stdlib``: the Python standard library's own ``.py`` files, read from disk."""

from __future__ import annotations

import platform
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from breedlab.data.sources.registry import FetchedSource, RawDoc, SourceContext, SourceUnavailable, source


@dataclass(frozen=True)
class StdlibParams:
    """Which standard-library files become code documents."""

    skip_dirs: tuple[str, ...] = ("test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__")
    """Folder names anywhere in a path that exclude the file (tests, installed packages)."""
    max_file_bytes: int = 150_000
    """Larger files are generated tables or test data, not idiomatic code: skipped."""

    def label(self) -> str:
        return "python-stdlib"

    def fetch_command(self) -> str:
        return f"nothing to fetch: ships with Python {platform.python_version()} (reinstall Python if missing)"


def stdlib_files(root: Path, params: StdlibParams) -> list[Path]:
    """The ``.py`` files under ``root`` that pass the filters, in path order."""
    skip = set(params.skip_dirs)
    return sorted(
        path
        for path in root.rglob("*.py")
        if not skip.intersection(path.relative_to(root).parts[:-1])
        and path.is_file()
        and path.stat().st_size <= params.max_file_bytes
    )


@source("python-stdlib", params=StdlibParams)
def fetch_python_stdlib(params: StdlibParams, ctx: SourceContext) -> FetchedSource:
    root = Path(sysconfig.get_paths()["stdlib"])
    if not (root / "os.py").is_file():
        raise SourceUnavailable(params.label(), params.fetch_command(), f"no standard library at {root}")

    def read() -> Iterator[RawDoc]:
        files = stdlib_files(root, params)
        for path in ctx.track(files, "python-stdlib files", len(files)):
            text = path.read_text(encoding="utf-8", errors="replace")
            yield RawDoc(id=f"stdlib:{path.relative_to(root).as_posix()}", text=text)

    return FetchedSource(versions={"python": platform.python_version()}, read=read)
