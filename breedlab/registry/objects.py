"""Content-addressed object store: every file is kept once, under its sha256.

Layout: ``objects/<first two hex>/<sha256>``. Objects are read-only once
stored; an artifact directory holds hard links to them, so a model directory
can be handed to ``from_pretrained`` without copying 500 MB of weights.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from breedlab.registry.atomic import TMP_PREFIX, fsync_dir, temp_path
from breedlab.registry.canonical import CHUNK, is_sha256, sha256_file

READ_ONLY = 0o444


class ObjectStore:
    def __init__(self, root: Path):
        self.root = root
        self.tmp_dir = root / "tmp"

    def path(self, digest: str) -> Path:
        if not is_sha256(digest):
            raise ValueError(f"not a sha256 digest: {digest!r}")
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, source: Path, *, move: bool = False) -> tuple[str, int]:
        """Store ``source``; return ``(sha256, size)``. Storing twice keeps one copy.

        With ``move=True`` and a source on the same file system, the file is
        renamed into the store instead of copied (the caller gives it up).
        """
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        staged = temp_path(self.tmp_dir)
        try:
            digest = self._stage(source, staged, move)
            size = staged.stat().st_size
            self._publish(staged, digest)
        finally:
            staged.unlink(missing_ok=True)
        return digest, size

    def _stage(self, source: Path, staged: Path, move: bool) -> str:
        if move:
            try:
                os.replace(source, staged)
                return sha256_file(staged)
            except OSError:
                pass  # different file system: fall back to copying
        digest = hashlib.sha256()
        with open(source, "rb") as src, open(staged, "wb") as dst:
            while block := src.read(CHUNK):
                digest.update(block)
                dst.write(block)
            dst.flush()
            os.fsync(dst.fileno())
        return digest.hexdigest()

    def _publish(self, staged: Path, digest: str) -> None:
        final = self.path(digest)
        if final.is_file():
            return  # already stored: content addressing makes this a no-op
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(staged, READ_ONLY)
        os.replace(staged, final)
        fsync_dir(final.parent)

    def link_into(self, digest: str, target: Path) -> None:
        """Hard-link object ``digest`` at ``target`` (copy if links are impossible)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(digest), target)
        except OSError:
            shutil.copyfile(self.path(digest), target)
            os.chmod(target, READ_ONLY)

    def all_digests(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for shard in self.root.iterdir()
            if shard.is_dir() and len(shard.name) == 2
            for p in shard.iterdir()
            if not p.name.startswith(TMP_PREFIX)
        )

    def rehash(self, digest: str) -> str:
        return sha256_file(self.path(digest))
