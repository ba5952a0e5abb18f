"""File parsers and renderers, each on a tiny inline fixture."""

from __future__ import annotations

import json
import shutil

import pytest

from breedlab.data.parsers import (
    parse_icd10_xml,
    parse_json_licenses,
    parse_obo_defs,
    parse_sotu,
    parse_text,
)
from breedlab.data.render import is_man_alias, render_html, render_man, strip_overstrike

OBO = """format-version: 1.2
ontology: hp

[Term]
id: HP:0000001
name: All

[Term]
id: HP:0000003
name: Multicystic kidney dysplasia
def: "Multiple cysts of \\"varying\\" size in the kidney." [https://orcid.org/0000]
comment: The affected kidney is nonfunctional.
synonym: "Multicystic dysplastic kidney" EXACT []

[Term]
id: HP:0000005
name: Old term
def: "This term is obsolete." []
is_obsolete: true

[Typedef]
id: part_of
def: "not a term" []
"""

ICD = """<?xml version="1.0" encoding="utf-8"?>
<ICD10CM.tabular>
  <chapter>
    <name>1</name>
    <desc>Certain infectious diseases (A00-B99)</desc>
    <section id="A00-A09">
      <desc>Intestinal infectious diseases (A00-A09)</desc>
      <diag>
        <name>A00</name>
        <desc>Cholera</desc>
        <diag>
          <name>A00.0</name>
          <desc>Cholera due to Vibrio cholerae 01</desc>
          <inclusionTerm><note>Classical cholera</note></inclusionTerm>
        </diag>
      </diag>
      <diag>
        <name>A01</name>
        <desc>Typhoid fever</desc>
        <excludes1><note>paratyphoid (A01.1)</note><note>other (A02)</note></excludes1>
      </diag>
    </section>
  </chapter>
</ICD10CM.tabular>
"""

MAN_PAGE = r""".\" comment line
.TH DEMO 1 2024-01-01 "demo 1.0" "User Commands"
.SH NAME
demo \- show a demonstration
.SH DESCRIPTION
.B demo
prints an extraordinarily long explanation of its internationalization behaviour.
"""


def test_parse_text_yields_the_whole_file(tmp_path):
    path = tmp_path / "MIT.txt"
    path.write_text("MIT License\n\nPermission is hereby granted.", encoding="utf-8")
    assert list(parse_text(path, "data/MIT.txt")) == [("data/MIT.txt", path.read_text())]


def test_obo_defs_keeps_defined_current_terms_only(tmp_path):
    path = tmp_path / "hp.obo"
    path.write_text(OBO, encoding="utf-8")
    items = list(parse_obo_defs(path, "hp.obo"))
    assert items == [
        (
            "HP:0000003",
            'Multicystic kidney dysplasia: Multiple cysts of "varying" size in the kidney.\n'
            "The affected kidney is nonfunctional.",
        )
    ]


def test_icd10_xml_groups_a_section_into_one_document(tmp_path):
    path = tmp_path / "icd.xml"
    path.write_text(ICD, encoding="utf-8")
    [(item_id, text)] = list(parse_icd10_xml(path, "icd.xml"))
    assert item_id == "icd10:A00-A09"
    assert text.splitlines()[0] == "ICD-10-CM chapter 1: Certain infectious diseases (A00-B99)"
    assert "A00 Cholera\n  A00.0 Cholera due to Vibrio cholerae 01\n    Includes: Classical cholera" in text
    assert "A01 Typhoid fever\n  Excludes1: paratyphoid (A01.1); other (A02)" in text
    assert "\n\nA01 Typhoid fever" in text  # one paragraph per category: chunking cuts between them


def test_sotu_adds_year_and_speaker_header(tmp_path):
    path = tmp_path / "1790_george_washington_n.txt"
    path.write_text("Fellow-Citizens of the Senate.", encoding="utf-8")
    [(item_id, text)] = list(parse_sotu(path, "data/1790_george_washington_n.txt"))
    assert item_id == "data/1790_george_washington_n.txt"
    assert text == "State of the Union address, 1790, George Washington.\n\nFellow-Citizens of the Senate."


def test_json_licenses_one_item_per_licence_with_text(tmp_path):
    path = tmp_path / "spdx-full.json"
    licences = {
        "MIT": {"name": "MIT License", "licenseText": "Permission is hereby granted"},
        "0BSD": {"name": "Zero-Clause BSD", "licenseText": "Permission to use"},
        "Empty": {"name": "No text"},
    }
    path.write_text(json.dumps(licences), encoding="utf-8")
    items = list(parse_json_licenses(path, "spdx-full.json"))
    assert items == [
        ("spdx-full.json:0BSD", "Zero-Clause BSD\n\nPermission to use"),
        ("spdx-full.json:MIT", "MIT License\n\nPermission is hereby granted"),
    ]


def test_strip_overstrike_removes_bold_underline_and_ansi():
    assert strip_overstrike("N\bNA\bAM\bME\bE _\bf_\bi_\bl_\be \x1b[1mbold\x1b[0m") == "NAME file bold"


def test_man_alias_pages_are_recognised():
    assert is_man_alias('.\\" alias\n.so man3/printf.3\n')
    assert not is_man_alias(MAN_PAGE)


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_render_man_gives_plain_unhyphenated_text():
    text = render_man(MAN_PAGE)
    assert "\b" not in text and "\x1b" not in text
    assert "NAME" in text and "demo - show a demonstration" in text
    assert "internationalization" in text  # hyphenation off: the long word is never split
    assert all(len(line) <= 80 for line in text.splitlines())


def test_render_html_keeps_visible_text_as_paragraphs():
    html = (
        "<html><head><title>Page title</title><style>p{}</style></head><body>"
        "<h1>SELECT</h1><p>Retrieves   rows &amp; columns.</p><script>x()</script><p>Second</p></body></html>"
    )
    text = render_html(html)
    assert "Page title" not in text and "x()" not in text and "p{}" not in text
    assert [line for line in text.splitlines() if line] == ["SELECT", "Retrieves rows & columns.", "Second"]
