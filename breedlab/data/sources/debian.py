"""``debian-package``: documentation inside Debian packages (man pages, HTML manuals).

``apt-get download`` fetches the ``.deb`` files into ``<cache>/debian/`` without
installing them; ``dpkg-deb -x`` unpacks each once. Rendering (groff for man
pages) is the slow step, so each package's rendered text is cached beside it
as one JSON file keyed by the renderer and page.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import unquote

from breedlab.data.render import (
    RenderError,
    groff_version,
    is_man_alias,
    man_section,
    read_man_source,
    render_html,
    render_man,
)
from breedlab.data.sources.fetching import extract_once, run_tool
from breedlab.data.sources.registry import FetchedSource, RawDoc, SourceContext, SourceUnavailable, source

RENDERERS = ("man", "html")
DEFAULT_FILES = {"man": ("usr/share/man/man*/*",), "html": ("usr/share/doc/**/*.html",)}
RENDER_CACHE_VERSION = 2  # bump when render output changes, to invalidate cached renders
_DEB_NAME = re.compile(r"^(?P<package>[^_]+)_(?P<version>[^_]+)_(?P<arch>[^_]+)\.deb$")
APT_TIMEOUTS = ("-o", "Acquire::Retries=1", "-o", "Acquire::http::Timeout=60")  # report, don't hang
_INDEX_MISSING = ("Unable to locate package", "404", "Failed to fetch", "has no installation candidate")


@dataclass(frozen=True)
class DebianPackageParams:
    """Debian packages to download and the renderer that turns their files into text."""

    packages: tuple[str, ...]
    """Package names for ``apt-get download``, e.g. ``[manpages, manpages-dev]``."""
    renderer: str = "man"
    """``man`` (groff -mandoc) or ``html`` (visible text of each page)."""
    files: tuple[str, ...] = ()
    """Globs inside the unpacked packages; empty: all man pages, or all ``usr/share/doc`` HTML."""
    sections: tuple[str, ...] = ()
    """Man sections to keep, e.g. ``["1", "2", "5", "8"]``; empty keeps every section."""

    def __post_init__(self) -> None:
        if self.renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {self.renderer!r}; choose one of {', '.join(RENDERERS)}")
        if not self.packages:
            raise ValueError("debian-package needs at least one package")

    def label(self) -> str:
        return "deb:" + ",".join(self.packages)

    def fetch_command(self) -> str:
        return "apt-get download " + " ".join(self.packages)


def cached_deb(deb_dir: Path, package: str) -> Path | None:
    """The newest-named cached ``.deb`` of ``package``, if any."""
    found = sorted(p for p in deb_dir.glob(f"{package}_*.deb") if _DEB_NAME.match(p.name))
    return found[-1] if found else None


def deb_version(deb: Path) -> str:
    """``6.03-2`` from ``manpages_6.03-2_all.deb`` (apt writes an epoch's ``:`` as ``%3a``)."""
    match = _DEB_NAME.match(deb.name)
    return unquote(match.group("version")) if match else "unknown"


def download_debs(params: DebianPackageParams, deb_dir: Path, ctx: SourceContext) -> dict[str, Path]:
    """``{package: .deb path}``, running ``apt-get download`` (and ``apt-get update`` once if needed)."""
    missing = [pkg for pkg in params.packages if cached_deb(deb_dir, pkg) is None]
    if missing:
        name, command = params.label(), params.fetch_command()
        download = ["apt-get", *APT_TIMEOUTS, "download", *missing]
        try:
            run_tool(download, cwd=deb_dir, name=name, fetch_command=command)
        except SourceUnavailable as exc:
            if not any(marker in exc.reason for marker in _INDEX_MISSING):
                raise
            # A fresh image has no package index yet: refresh it once and retry.
            update = ["apt-get", *APT_TIMEOUTS, "update"]
            run_tool(update, cwd=deb_dir, name=name, fetch_command="apt-get update && " + command)
            ctx.notes.append("ran apt-get update to refresh the Debian package index")
            run_tool(download, cwd=deb_dir, name=name, fetch_command=command)
    debs = {pkg: cached_deb(deb_dir, pkg) for pkg in params.packages}
    absent = [pkg for pkg, deb in debs.items() if deb is None]
    if absent:
        raise SourceUnavailable(params.label(), params.fetch_command(), f"apt-get gave no .deb for {absent}")
    return debs


def unpack_deb(deb: Path, dest: Path) -> None:
    run_tool(["dpkg-deb", "-x", str(deb), str(dest)], cwd=dest, name=deb.name, fetch_command="apt-get install dpkg")


def page_files(root: Path, params: DebianPackageParams) -> list[Path]:
    """Regular files (not alias symlinks) matching the globs and, for man pages, the sections."""
    patterns = params.files or DEFAULT_FILES[params.renderer]
    found = {path for pattern in patterns for path in root.glob(pattern)}
    pages = [p for p in found if p.is_file() and not p.is_symlink()]
    if params.renderer == "man" and params.sections:
        pages = [p for p in pages if man_section(p) in params.sections]
    return sorted(pages)


@source("debian-package", params=DebianPackageParams)
def fetch_debian_package(params: DebianPackageParams, ctx: SourceContext) -> FetchedSource:
    deb_dir = ctx.cache_dir / "debian"
    debs = download_debs(params, deb_dir, ctx)
    roots = {pkg: extract_once(deb, deb_dir / deb.name.removesuffix(".deb"), unpack_deb) for pkg, deb in debs.items()}

    def read() -> Iterator[RawDoc]:
        for pkg, root in roots.items():
            rendered = rendered_pages(root, params, ctx, pkg)
            for rel in sorted(rendered):
                yield RawDoc(id=f"{pkg}:{short_page_name(rel)}", text=rendered[rel])

    versions = {f"deb:{pkg}": deb_version(deb) for pkg, deb in debs.items()}
    if params.renderer == "man":
        versions["groff"] = groff_version()
    return FetchedSource(versions=versions, read=read)


def rendered_pages(root: Path, params: DebianPackageParams, ctx: SourceContext, pkg: str) -> dict[str, str]:
    """``{page path: text}`` for one unpacked package, rendered once and cached as JSON."""
    options = json.dumps([RENDER_CACHE_VERSION, params.renderer, params.files, params.sections])
    digest = hashlib.sha256(options.encode("utf-8")).hexdigest()[:12]
    cache = root.with_name(f"{root.name}.{params.renderer}-{digest}.json")
    if cache.is_file():
        return json.loads(cache.read_text(encoding="utf-8"))
    pages = page_files(root, params)
    render_one = _render_man_page if params.renderer == "man" else _render_html_page
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        # groff runs as a subprocess, so threads render pages in parallel
        results = list(ctx.track(pool.map(render_one, pages), f"render {pkg} ({params.renderer})", len(pages)))
    rendered = {p.relative_to(root).as_posix(): text for p, text in zip(pages, results) if text}
    staging = cache.with_suffix(".partial")
    staging.write_text(json.dumps(rendered, ensure_ascii=False, sort_keys=True), encoding="utf-8")
    staging.rename(cache)
    return rendered


def short_page_name(rel: str) -> str:
    """``man2/open.2`` for ``usr/share/man/man2/open.2.gz``: stable, unique and readable."""
    return rel.removeprefix("usr/share/man/").removeprefix("usr/share/doc/").removesuffix(".gz")


def _render_man_page(path: Path) -> str:
    """Rendered text without groff's header/footer lines; empty for aliases or failures."""
    source_text = read_man_source(path)
    if is_man_alias(source_text):
        return ""
    try:
        lines = render_man(source_text).strip("\n").splitlines()
    except (RenderError, OSError, subprocess.SubprocessError):
        return ""  # one broken page must not sink the package; it is simply absent
    return "\n".join(lines[1:-1]) if len(lines) > 2 else ""


def _render_html_page(path: Path) -> str:
    return render_html(path.read_text(encoding="utf-8", errors="replace"))
