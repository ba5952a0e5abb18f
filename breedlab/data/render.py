"""Renderers for documentation shipped in Debian packages: man pages and HTML.

Man pages go through ``groff -Tutf8 -mandoc`` (what ``man`` does), at a fixed
line length so the text does not depend on the terminal. Hyphenation is off
(``-rHY=0``) and lines are left-adjusted (``.ad l``) so words are never split
or padded with extra spaces. grotty's ``-cbou`` turns off bold/underline, and
:func:`strip_overstrike` removes any backspace overstrike or ANSI escapes
that slip through anyway.
"""

from __future__ import annotations

import gzip
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

MAN_LINE_LENGTH = 80
GROFF_TIMEOUT_S = 60

_OVERSTRIKE = re.compile(r".\x08")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_MAN_SECTION_DIR = re.compile(r"^man(\d)")


class RenderError(RuntimeError):
    """A page could not be rendered (groff missing or failing)."""


def strip_overstrike(text: str) -> str:
    """Drop ``x\\bx`` bold / ``_\\bx`` underline pairs and ANSI colour codes."""
    return _ANSI.sub("", _OVERSTRIKE.sub("", text))


def read_man_source(path: Path) -> str:
    """The roff source of a man page, gunzipping ``.gz`` files."""
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return raw.decode("utf-8", errors="replace")


def is_man_alias(source: str) -> bool:
    """A page whose body is only ``.so other.3``: an alias that would render as nothing."""
    lines = [line for line in source.splitlines() if line.strip() and not line.startswith(('.\\"', "'\\\""))]
    return bool(lines) and lines[0].startswith(".so ")


def man_section(path: Path) -> str | None:
    """``3`` for ``.../man3/printf.3.gz``; None for files outside a ``manN`` folder."""
    match = _MAN_SECTION_DIR.match(path.parent.name)
    return match.group(1) if match else None


def groff_version() -> str:
    """``1.22.4``: rendered man text depends on it, so it enters the dataset recipe."""
    groff = shutil.which("groff")
    if groff is None:
        return "missing"
    result = subprocess.run([groff, "--version"], capture_output=True, text=True, check=False)
    words = result.stdout.split("\n", 1)[0].split()
    return words[-1] if words else "unknown"


def render_man(source: str) -> str:
    """Plain UTF-8 text of a man page, as ``man`` would show it at 80 columns."""
    groff = shutil.which("groff")
    if groff is None:
        raise RenderError("groff is not installed (apt-get install groff-base)")
    length = f"{MAN_LINE_LENGTH}n"
    command = [groff, "-Tutf8", "-mandoc", f"-rLL={length}", f"-rLT={length}", "-rHY=0", "-P-cbou"]
    result = subprocess.run(
        command,
        input=(".ad l\n" + source).encode("utf-8"),
        capture_output=True,
        timeout=GROFF_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        raise RenderError(f"groff exited {result.returncode}: {result.stderr.decode(errors='replace')[:200]}")
    return strip_overstrike(result.stdout.decode("utf-8", errors="replace"))


class _TextExtractor(HTMLParser):
    """Collects visible text; block-level tags become line breaks."""

    BLOCK_TAGS = {"p", "div", "br", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "table", "dt", "dd"}
    HIDDEN_TAGS = {"script", "style", "head", "title"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.hidden_depth = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in self.HIDDEN_TAGS:
            self.hidden_depth += 1
        elif tag in self.BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.HIDDEN_TAGS:
            self.hidden_depth = max(0, self.hidden_depth - 1)
        elif tag in self.BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if not self.hidden_depth:
            self.parts.append(data)


def render_html(source: str) -> str:
    """Visible text of an HTML page, paragraphs separated by blank lines."""
    extractor = _TextExtractor()
    extractor.feed(source)
    extractor.close()
    lines = (" ".join(line.split()) for line in "".join(extractor.parts).split("\n"))
    return "\n".join(lines)
