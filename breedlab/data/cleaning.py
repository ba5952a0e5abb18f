"""Text cleaning and chunking: the same rules for every source.

``clean_text`` normalises (NFC, no control characters, ``\\n`` line ends, no
trailing spaces, at most one blank line in a row). ``split_long`` cuts a text
into pieces of at most ``max_chars``, preferring paragraph, then line, then
sentence boundaries, so a chunk rarely starts mid-sentence. ``chunk_documents``
applies both and drops pieces shorter than ``min_chars``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Iterable, Iterator

# C0/C1 controls except tab and newline, plus DEL, BOM and zero-width joiners
# that only add invisible tokens.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u200b]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+")
# Cut order: blank line (paragraph), newline, sentence end, any space.
_SEPARATORS = ("\n\n", "\n", None, " ")


@dataclass(frozen=True)
class Document:
    """A cleaned document ready for dedup, split and sharding."""

    id: str
    """Unique within the domain: the raw document's id, plus ``#NNN`` when it was cut."""
    group: str
    """The raw document it came from: all pieces of one raw document share a split."""
    source: str
    """Label of the source that produced it, e.g. ``pip:spdx``."""
    text: str


def clean_text(text: str) -> str:
    """NFC, ``\\n`` line ends, no control characters or trailing spaces, no blank-line runs."""
    text = unicodedata.normalize("NFC", text)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text)
    text = _TRAILING_SPACE.sub("\n", text + "\n")
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip("\n").rstrip()


def split_long(text: str, max_chars: int) -> list[str]:
    """Cut ``text`` into pieces of at most ``max_chars``, at the coarsest boundary that fits."""
    if len(text) <= max_chars:
        return [text]
    return _pack(_split_units(text, max_chars, 0), max_chars)


def _split_units(text: str, max_chars: int, level: int) -> list[tuple[str, str]]:
    """``(unit, separator that follows it)`` pairs, each unit at most ``max_chars``."""
    if len(text) <= max_chars:
        return [(text, "")]
    if level == len(_SEPARATORS):
        return [(text[i : i + max_chars], "") for i in range(0, len(text), max_chars)]
    separator = _SEPARATORS[level]
    pieces = _SENTENCE_END.split(text) if separator is None else text.split(separator)
    joiner = " " if separator is None else separator
    units: list[tuple[str, str]] = []
    for piece in pieces:
        units += _split_units(piece, max_chars, level + 1)
        units[-1] = (units[-1][0], joiner)
    units[-1] = (units[-1][0], "")
    return units


def _pack(units: list[tuple[str, str]], max_chars: int) -> list[str]:
    """Greedily join consecutive units (with their separators) up to ``max_chars``."""
    chunks: list[str] = []
    current, pending = "", ""
    for unit, separator in units:
        if current and len(current) + len(pending) + len(unit) > max_chars:
            chunks.append(current)
            current, pending = "", ""
        current = current + pending + unit if current else unit
        pending = separator
    if current:
        chunks.append(current)
    return [chunk.strip() for chunk in chunks if chunk.strip()]


def chunk_documents(
    raw: Iterable[tuple[str, str, str]], *, min_chars: int, max_chars: int
) -> Iterator[Document]:
    """Clean each ``(id, source, text)``, cut it to ``max_chars``, drop pieces under ``min_chars``."""
    for raw_id, source, text in raw:
        pieces = split_long(clean_text(text), max_chars)
        for index, piece in enumerate(pieces):
            if len(piece) < min_chars:
                continue
            doc_id = raw_id if len(pieces) == 1 else f"{raw_id}#{index:03d}"
            yield Document(id=doc_id, group=raw_id, source=source, text=piece)


def pack_items(items: Iterable[tuple[str, str]], target_chars: int) -> Iterator[tuple[str, str]]:
    """Join consecutive short items into documents of up to ``target_chars`` (0: leave as is).

    Ontology definitions are ~150 characters each: too short to be a training
    document on their own, so neighbours are packed together, one per paragraph.
    The packed id is ``<first id>..<last id>`` so it stays stable and unique.
    """
    if target_chars <= 0:
        yield from items
        return
    ids: list[str] = []
    texts: list[str] = []
    size = 0
    for item_id, text in items:
        if texts and size + len(text) + 2 > target_chars:
            yield _packed(ids, texts)
            ids, texts, size = [], [], 0
        ids.append(item_id)
        texts.append(text.strip())
        size += len(text) + 2
    if texts:
        yield _packed(ids, texts)


def _packed(ids: list[str], texts: list[str]) -> tuple[str, str]:
    item_id = ids[0] if len(ids) == 1 else f"{ids[0]}..{ids[-1]}"
    return item_id, "\n\n".join(texts)
