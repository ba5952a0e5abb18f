"""An artifact's files on disk: its model card stored as one more object, and its folder of hard links.

Both run under the registry's writer lock, before the artifact's committing event: a process killed
in either leaves only objects and a temp folder that no committed event names.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

from breedlab.registry.atomic import TMP_PREFIX, fsync_dir
from breedlab.registry.card import render_card
from breedlab.registry.manifest import FileEntry, Manifest
from breedlab.registry.objects import ObjectStore

CARD_NAME = "README.md"


def with_card(objects: ObjectStore, manifest: Manifest) -> Manifest:
    """``manifest`` with its rendered model card stored and listed as ``README.md``."""
    with tempfile.NamedTemporaryFile("w", suffix=".md", delete=False, encoding="utf-8") as out:
        out.write(render_card(manifest))
    try:
        entry = FileEntry(*objects.put(Path(out.name), move=True))
    finally:
        Path(out.name).unlink(missing_ok=True)
    return replace(manifest, files={**manifest.files, CARD_NAME: entry})


def materialise(objects: ObjectStore, artifacts_dir: Path, manifest: Manifest) -> None:
    """Build ``artifacts/<id>/`` from hard links in a temp folder, then rename it in."""
    final = artifacts_dir / manifest.id
    if final.exists():
        shutil.rmtree(final)  # left by a process killed before its commit
    staging = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=artifacts_dir))
    for rel, entry in manifest.files.items():
        objects.link_into(entry.sha256, staging / rel)
    staging.rename(final)
    fsync_dir(artifacts_dir)
