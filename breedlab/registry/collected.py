"""Which artifact files a gc collected, replayed from the log (``governance/archive.py`` collects).

A ``collected`` event names the weight files it removed; a ``restored`` event (registering the same
artifact again, a re-breed) brings them all back. Only the registry's files are gone: the manifest,
events and packets stay, so lineage and ``verify`` stay whole.
"""

from __future__ import annotations

from breedlab.registry.events import Event


def collected_files(events: list[Event]) -> dict[str, set[str]]:
    """Artifact id -> the relative names of its files that are collected now."""
    gone: dict[str, set[str]] = {}
    for event in events:
        if event.type == "collected":
            gone.setdefault(event.artifact, set()).update(event.data.get("files", {}))
        elif event.type == "restored":
            gone.pop(event.artifact, None)
    return {artifact: files for artifact, files in gone.items() if files}
