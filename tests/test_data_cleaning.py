"""Cleaning, chunking and packing: the text rules every source goes through."""

from __future__ import annotations

import unicodedata

from breedlab.data.cleaning import chunk_documents, clean_text, pack_items, split_long


def test_clean_text_normalises_unicode_to_nfc():
    decomposed = "Cafe\u0301 au lait"
    assert clean_text(decomposed) == unicodedata.normalize("NFC", decomposed) == "Café au lait"


def test_clean_text_strips_control_characters_but_keeps_tabs_and_newlines():
    assert clean_text("a\x00b\x07c\td\x1be\ufeff\nf") == "abc\tde\nf"


def test_clean_text_collapses_blank_runs_and_trailing_space():
    text = "\r\n\r\nfirst  \r\n\n\n\n\nsecond\t\n\n\n"
    assert clean_text(text) == "first\n\nsecond"


def test_clean_text_keeps_leading_indentation():
    assert clean_text("def f():\n    return 1\n") == "def f():\n    return 1"


def test_split_long_leaves_short_text_alone():
    assert split_long("short text", 100) == ["short text"]


def test_split_long_prefers_paragraph_boundaries():
    paragraphs = [f"Paragraph {i} " + "word " * 20 for i in range(6)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    pieces = split_long(text, 300)
    assert all(len(p) <= 300 for p in pieces)
    assert all(p.startswith("Paragraph") for p in pieces)
    assert " ".join(" ".join(pieces).split()) == " ".join(text.split())


def test_split_long_falls_back_to_sentences_then_hard_cuts():
    sentences = " ".join(f"Sentence number {i} is here." for i in range(40))
    pieces = split_long(sentences, 120)
    assert all(len(p) <= 120 for p in pieces)
    assert all(p.startswith("Sentence") and p.endswith(".") for p in pieces)
    hard = split_long("x" * 250, 100)
    assert [len(p) for p in hard] == [100, 100, 50]


def test_chunk_documents_cuts_numbers_and_drops_short_pieces():
    long_text = "\n\n".join("Line of text number %d, padded out a bit." % i for i in range(30))
    raw = [("doc-a", "src", long_text), ("doc-b", "src", "too short"), ("doc-c", "src", "x" * 60)]
    docs = list(chunk_documents(raw, min_chars=50, max_chars=400))
    ids = [d.id for d in docs]
    assert "doc-b" not in ids and "doc-c" in ids
    pieces = [d for d in docs if d.group == "doc-a"]
    assert len(pieces) > 1 and pieces[0].id == "doc-a#000"
    assert all(50 <= len(d.text) <= 400 and d.source == "src" for d in docs)


def test_pack_items_joins_short_neighbours_up_to_target():
    items = [(f"T{i}", "d" * 40) for i in range(10)]
    packed = list(pack_items(items, 100))
    assert packed[0] == ("T0..T1", "d" * 40 + "\n\n" + "d" * 40)
    assert sum(text.count("d" * 40) for _, text in packed) == 10
    assert all(len(text) <= 100 for _, text in packed)
    assert list(pack_items(items, 0)) == items
