"""File parsers: turn one data file shipped in a package into ``(item id, text)`` items.

A parser is chosen by name in ``domains.yaml`` (``parser: obo-defs``). Each
yields plain text; cleaning, chunking and dedup happen later, once, for all
sources alike. Item ids are stable (file name or record key) because they
seed the train/validation/test split.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable, Iterator

Item = tuple[str, str]

_OBO_DEF = re.compile(r'^def: "((?:[^"\\]|\\.)*)"')
_OBO_UNESCAPE = re.compile(r"\\(.)")
_SOTU_NAME = re.compile(r"^(\d{4})_(.+?)(?:_[a-z])?$")


def parse_text(path: Path, rel: str) -> Iterator[Item]:
    """The whole file is one item."""
    yield rel, path.read_text(encoding="utf-8", errors="replace")


def parse_obo_defs(path: Path, rel: str) -> Iterator[Item]:
    """One item per ontology term that has a ``def:``: ``name: definition`` (+ its comment).

    Obsolete terms are skipped: their definitions say "this term is obsolete".
    """
    for stanza in path.read_text(encoding="utf-8").split("\n\n"):
        if not stanza.startswith("[Term]"):
            continue
        fields: dict[str, str] = {}
        for line in stanza.splitlines()[1:]:
            key, _, value = line.partition(": ")
            if key == "def" and (match := _OBO_DEF.match(line)):
                value = _OBO_UNESCAPE.sub(r"\1", match.group(1))
            fields.setdefault(key, value)
        if "def" not in fields or fields.get("is_obsolete") == "true":
            continue
        text = f"{fields.get('name', fields.get('id', ''))}: {fields['def']}"
        if "comment" in fields:
            text += f"\n{fields['comment']}"
        yield fields.get("id", rel), text


def parse_icd10_xml(path: Path, rel: str) -> Iterator[Item]:
    """One item per ICD-10-CM section (e.g. A00-A09): every code's description and notes.

    Single descriptions are a few words; grouping a section keeps the related
    codes together and gives documents of a few kB, one paragraph per category.
    """
    root = ET.parse(path).getroot()
    for chapter in root.iter("chapter"):
        chapter_title = f"ICD-10-CM chapter {chapter.findtext('name', '')}: {chapter.findtext('desc', '')}"
        for section in chapter.iter("section"):
            paragraphs = [chapter_title, f"Section {section.findtext('desc', '')}"]
            paragraphs += ["\n".join(_icd_lines(diag)) for diag in section.findall("diag")]
            yield f"icd10:{section.get('id', '')}", "\n\n".join(paragraphs)


def _icd_lines(diag: ET.Element, depth: int = 0) -> Iterator[str]:
    """``A00.1 Cholera due to ...`` then its notes, children indented below it."""
    indent = "  " * depth
    yield f"{indent}{diag.findtext('name', '')} {diag.findtext('desc', '')}"
    for child in diag:
        if child.tag in ("name", "desc", "diag"):
            continue
        notes = [note.text.strip() for note in child.iter("note") if note.text]
        if notes:
            yield f"{indent}  {_ICD_NOTE_TITLES.get(child.tag, child.tag)}: {'; '.join(notes)}"
    for sub in diag.findall("diag"):
        yield from _icd_lines(sub, depth + 1)


_ICD_NOTE_TITLES = {
    "inclusionTerm": "Includes",
    "includes": "Includes",
    "excludes1": "Excludes1",
    "excludes2": "Excludes2",
    "codeFirst": "Code first",
    "codeAlso": "Code also",
    "useAdditionalCode": "Use additional code",
    "sevenChrNote": "Seventh character",
    "notes": "Note",
}


def parse_sotu(path: Path, rel: str) -> Iterator[Item]:
    """A State of the Union address; the file name (``1790_george_washington_n``) gives the header."""
    text = path.read_text(encoding="utf-8", errors="replace")
    match = _SOTU_NAME.match(path.stem)
    if match:
        speaker = match.group(2).replace("_", " ").title()
        text = f"State of the Union address, {match.group(1)}, {speaker}.\n\n{text}"
    yield rel, text


def parse_json_licenses(path: Path, rel: str) -> Iterator[Item]:
    """``spdx-full.json``: ``{id: {name, licenseText}}``, one item per licence."""
    licences = json.loads(path.read_text(encoding="utf-8"))
    for licence_id in sorted(licences):
        entry = licences[licence_id]
        body = entry.get("licenseText") if isinstance(entry, dict) else None
        if body:
            yield f"{rel}:{licence_id}", f"{entry.get('name', licence_id)}\n\n{body}"


PARSERS: dict[str, Callable[[Path, str], Iterator[Item]]] = {
    "text": parse_text,
    "obo-defs": parse_obo_defs,
    "icd10-xml": parse_icd10_xml,
    "sotu": parse_sotu,
    "json-licenses": parse_json_licenses,
}


def check_parser(name: str, allowed: tuple[str, ...]) -> str:
    """Refuse a parser name the source type does not support, listing those it does."""
    if name not in allowed or name not in PARSERS:
        raise ValueError(f"unknown parser {name!r}; this source type supports: {', '.join(allowed)}")
    return name
