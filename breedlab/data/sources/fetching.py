"""Running package clients (npm, apt-get, dpkg) and unpacking into the source cache.

Both steps leave nothing half-done in the cache: an extraction goes to a
temporary folder that is renamed into place only when complete, so an
interrupted build re-extracts instead of reading a partial tree.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Callable

from breedlab.data.sources.registry import SourceUnavailable

FETCH_TIMEOUT_S = 600
COMPLETE_MARKER = ".complete"


def run_tool(
    argv: list[str], *, cwd: Path, name: str, fetch_command: str, timeout: int = FETCH_TIMEOUT_S
) -> subprocess.CompletedProcess:
    """Run ``argv`` in ``cwd``; any failure becomes :class:`SourceUnavailable` with the tool's own words."""
    if shutil.which(argv[0]) is None:
        raise SourceUnavailable(name, fetch_command, f"{argv[0]} is not installed")
    cwd.mkdir(parents=True, exist_ok=True)
    try:
        result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise SourceUnavailable(name, fetch_command, f"{' '.join(argv)} timed out after {timeout} s") from None
    if result.returncode != 0:
        detail = last_lines(result.stderr or result.stdout)
        raise SourceUnavailable(name, fetch_command, f"{' '.join(argv)} exited {result.returncode}: {detail}")
    return result


def last_lines(text: str, count: int = 3) -> str:
    """The tail of a tool's output, on one line, for an error message."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:]) or "no output"


def extract_once(archive: Path, dest: Path, extract: Callable[[Path, Path], None]) -> Path:
    """Unpack ``archive`` into ``dest`` with ``extract(archive, folder)`` unless already done."""
    if (dest / COMPLETE_MARKER).is_file():
        return dest
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    extract(archive, staging)
    (staging / COMPLETE_MARKER).write_text(archive.name + "\n", encoding="utf-8")
    shutil.rmtree(dest, ignore_errors=True)
    staging.rename(dest)
    return dest
