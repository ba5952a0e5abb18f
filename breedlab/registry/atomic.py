"""Crash-safe file writes and the registry's write lock.

Every write goes to a temporary file in the destination folder, is fsynced,
then renamed over the target (rename is atomic on POSIX) and the folder is
fsynced so the rename itself survives a crash. A process killed at any moment
leaves either the old file or the new one, plus at worst a ``.tmp-*`` file
that nothing reads.
"""

from __future__ import annotations

import errno
import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

TMP_PREFIX = ".tmp-"


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(directory: Path, suffix: str = "") -> Path:
    """A fresh unique path inside ``directory`` that readers ignore."""
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=suffix, dir=directory)
    os.close(fd)
    return Path(name)


def atomic_write_bytes(target: Path, data: bytes, mode: int = 0o644) -> None:
    """Write ``data`` to ``target`` so that readers see all of it or none of it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(target.parent)
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(target.parent)


def append_line_durably(path: Path, line: bytes) -> None:
    """Append one newline-terminated record with a single write, then fsync.

    O_APPEND plus one ``write`` call means a killed process cannot interleave
    half a record with another writer's; a torn tail can only come from a
    power loss and is handled by the reader (see ``events.EventLog``).
    """
    assert line.endswith(b"\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # pragma: no cover - only on a full disk
            raise OSError(errno.ENOSPC, f"short write appending to {path}")
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Serialise writers across processes with ``flock`` (released if the holder dies)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
