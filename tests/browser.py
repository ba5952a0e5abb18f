"""Headless Chromium for tests: screenshots and rendered DOM of report pages and dashboards.

A browser test that skips when the browser is missing cannot fail, so a
missing Chromium is an error that names the fix (``make test`` installs it).
Each call gets a fresh empty profile and the flags that keep Chromium off
the network (background networking, component updates, sync), which the
closed test network would refuse anyway. PNGs are checked with the stdlib
only (zlib + struct): Pillow is not a dependency.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path

ENV_VAR = "BREEDLAB_CHROMIUM"
DEFAULT_PATH = "/usr/bin/chromium"
INSTALL_HINT = "apt-get install -y chromium (or run `make test`, which installs it)"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio")
TIMEOUT_S = 60


class BrowserError(RuntimeError):
    """Chromium is missing, failed, or produced something unusable."""


def chromium_path() -> str:
    """$BREEDLAB_CHROMIUM, else /usr/bin/chromium, else ``chromium`` on PATH."""
    override = os.environ.get(ENV_VAR)
    if override:
        if not os.access(override, os.X_OK):
            raise BrowserError(f"{ENV_VAR}={override} is not an executable file")
        return override
    if os.access(DEFAULT_PATH, os.X_OK):
        return DEFAULT_PATH
    found = shutil.which("chromium")
    if found is None:
        raise BrowserError(f"headless Chromium not found ({ENV_VAR}, {DEFAULT_PATH}, PATH); fix: {INSTALL_HINT}")
    return found


def as_url(url_or_path: str | Path) -> str:
    text = str(url_or_path)
    if isinstance(url_or_path, str) and "://" in text:
        return text
    return Path(text).resolve().as_uri()


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Chromium with a throw-away profile; raises with the tail of its stderr on failure."""
    with tempfile.TemporaryDirectory(prefix="breedlab-chromium-") as profile:
        cmd = [chromium_path(), *FLAGS, f"--user-data-dir={profile}", *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise BrowserError(f"chromium timed out after {timeout}s: {' '.join(cmd)}\n"
                               f"{_tail(exc.stderr)}") from exc
    if done.returncode != 0:
        raise BrowserError(f"chromium exited {done.returncode}: {' '.join(cmd)}\n{_tail(done.stderr)}")
    return done


def _tail(stderr: str | bytes | None, lines: int = 30) -> str:
    if isinstance(stderr, bytes):
        stderr = stderr.decode(errors="replace")
    # dbus complaints are noise in a container with no session bus
    kept = [line for line in (stderr or "").splitlines() if "dbus" not in line]
    return "chromium stderr (tail):\n" + "\n".join(kept[-lines:])


def screenshot(url_or_path: str | Path, png_path: str | Path, width: int = 1280, height: int = 2000,
               timeout: float = TIMEOUT_S) -> Path:
    """A PNG of the page's first ``width`` x ``height`` CSS pixels."""
    png = Path(png_path).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    done = _run([f"--screenshot={png}", f"--window-size={width},{height}", as_url(url_or_path)], timeout)
    if not png.is_file() or png.stat().st_size == 0:
        raise BrowserError(f"chromium wrote no screenshot at {png}\n{_tail(done.stderr)}")
    return png


def dump_dom(url_or_path: str | Path, timeout: float = TIMEOUT_S) -> str:
    """The DOM after Chromium has loaded and rendered the page, serialised as HTML."""
    done = _run(["--dump-dom", as_url(url_or_path)], timeout)
    if "<html" not in done.stdout.lower():
        raise BrowserError(f"chromium printed no DOM for {url_or_path}\n{_tail(done.stderr)}")
    return done.stdout


def png_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the IHDR chunk."""
    header = _chunks(Path(path).read_bytes())
    kind, data = next(header)
    if kind != b"IHDR":
        raise BrowserError(f"{path}: first PNG chunk is {kind!r}, not IHDR")
    width, height = struct.unpack(">II", data[:8])
    return width, height


def png_is_blank(path: str | Path) -> bool:
    """True when every pixel has the colour of the first one (a page that rendered nothing).

    Rows are decoded one by one and the scan stops at the first different
    pixel, so a real page is answered after its first few rows.
    """
    bpp = _CHANNELS[next(_chunks(Path(path).read_bytes()))[1][9]]
    first = None
    for row in png_rows(path):
        first = first if first is not None else row[:bpp] * (len(row) // bpp)
        if row != first:
            return False
    return True


def png_rows(path: str | Path) -> Iterator[bytes]:
    """Unfiltered pixel rows of an 8-bit, non-interlaced grey/RGB/RGBA PNG (what Chromium writes)."""
    raw = Path(path).read_bytes()
    chunks = list(_chunks(raw))
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if depth != 8 or interlace or color not in _CHANNELS:
        raise BrowserError(f"{path}: unsupported PNG (depth {depth}, colour type {color}, interlace {interlace})")
    bpp = _CHANNELS[color]
    data = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    stride = width * bpp
    prev = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        prev = _unfilter(data[start], bytearray(data[start + 1:start + 1 + stride]), prev, bpp)
        yield prev


_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> bytes per pixel at depth 8


def _unfilter(kind: int, row: bytearray, prev: bytes, bpp: int) -> bytes:
    """Undo one row's PNG filter (spec section 9): none, sub, up, average, paeth."""
    if kind > 4:
        raise BrowserError(f"corrupt PNG: filter type {kind}")
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(row, prev))
    for i in range(len(row)) if kind else ():
        left = row[i - bpp] if i >= bpp else 0
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + (left + prev[i]) // 2) & 0xFF
        elif kind == 4:
            up_left = prev[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + _paeth(left, prev[i], up_left)) & 0xFF
    return bytes(row)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _chunks(raw: bytes) -> Iterator[tuple[bytes, bytes]]:
    if raw[:8] != b"\x89PNG\r\n\x1a\n":
        raise BrowserError("not a PNG file (bad signature)")
    pos = 8
    while pos + 8 <= len(raw):
        length, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        yield kind, raw[pos + 8:pos + 8 + length]
        pos += 12 + length
