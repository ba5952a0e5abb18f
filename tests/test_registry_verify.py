"""``registry verify`` names every kind of tampering, and passes a clean registry."""

from __future__ import annotations

import json

import pytest
from registry_helpers import make_writable, register_weights
from typer.testing import CliRunner

from breedlab.cli.app import app
from breedlab.registry import Registry, verify


@pytest.fixture()
def populated(tmp_path):
    home = tmp_path / "home"
    reg = Registry.open(home / "registry")
    parent = register_weights(reg, tmp_path, name="parent", content=b"p" * 5000)
    child = register_weights(reg, tmp_path, name="child", content=b"c" * 5000, kind="child", parents=[parent.id])
    reg.transition(parent.id, "champion", event_type="promoted", actor="approver", reason="bootstrap")
    return home, reg, parent, child


def problems(reg):
    return [f"{f.subject}: {f.message}" for f in verify(reg.root) if f.level == "problem"]


def run_cli(*args):
    return CliRunner().invoke(app, list(args))


def test_clean_registry_verifies_with_exit_zero(populated):
    home, reg, _, _ = populated
    assert problems(reg) == []
    result = run_cli("registry", "verify", "--home", str(home))
    assert result.exit_code == 0, result.output
    assert "registry verified" in result.output


def test_one_flipped_byte_in_a_weight_file_is_named(populated):
    home, reg, _, child = populated
    weights = child.path / "model.safetensors"
    make_writable(weights)
    data = bytearray(weights.read_bytes())
    data[1234] ^= 0x01
    weights.write_bytes(bytes(data))
    found = problems(reg)
    assert len(found) == 1 and "child child" in found[0] and "model.safetensors" in found[0]
    result = run_cli("registry", "verify", "--home", str(home))
    assert result.exit_code == 1 and "child child" in result.output


@pytest.mark.parametrize("field, value", [("recipe", {"source": "forged"}), ("metrics", {"accuracy": 0.99})])
def test_an_edited_manifest_is_named(populated, field, value):
    _, reg, parent, _ = populated
    path = reg.manifests_dir / f"{parent.id}.json"
    body = json.loads(path.read_bytes())
    body[field] = value
    make_writable(path)
    path.write_text(json.dumps(body))
    found = problems(reg)
    assert any("parent parent" in line and "edited" in line for line in found), found


def _rewrite_log(reg, transform):
    lines = reg.log.path.read_bytes().splitlines(keepends=True)
    reg.log.path.write_bytes(b"".join(transform(lines)))


def test_an_event_deleted_from_the_middle_is_found(populated):
    _, reg, _, _ = populated
    _rewrite_log(reg, lambda lines: [lines[0], lines[2]])
    assert any("deleted" in line for line in problems(reg))


def test_reordered_events_are_found(populated):
    _, reg, _, _ = populated
    _rewrite_log(reg, lambda lines: [lines[1], lines[0], lines[2]])
    assert any("reordered" in line for line in problems(reg))


def test_an_event_deleted_from_the_end_is_found(populated):
    _, reg, _, _ = populated
    _rewrite_log(reg, lambda lines: lines[:-1])
    assert any("deleted from the end" in line for line in problems(reg))


def test_an_edited_event_is_found(populated):
    _, reg, _, _ = populated
    _rewrite_log(reg, lambda lines: [lines[0], lines[1], lines[2].replace(b"bootstrap", b"forged!!!")])
    assert any("edited" in line for line in problems(reg))


def test_a_missing_object_is_named(populated):
    _, reg, parent, _ = populated
    digest = parent.manifest.files["model.safetensors"].sha256
    reg.objects.path(digest).unlink()
    assert any("parent parent" in line and "missing" in line for line in problems(reg))


def test_reindex_repairs_a_lost_index(populated):
    home, reg, parent, _ = populated
    reg.index_path.unlink()
    assert any("index" in line for line in problems(reg))
    result = run_cli("registry", "reindex", "--home", str(home))
    assert result.exit_code == 0, result.output
    assert problems(reg) == []
    assert reg.get(parent.id).state == "champion"


def test_cli_list_show_lineage(populated):
    home, _, parent, child = populated
    listing = run_cli("registry", "list", "--home", str(home))
    assert listing.exit_code == 0 and parent.id[:12] in listing.output and "champion" in listing.output
    shown = run_cli("registry", "show", child.id[:10], "--home", str(home))
    assert shown.exit_code == 0 and child.id in shown.output and "registered" in shown.output
    tree = run_cli("registry", "lineage", child.id, "--home", str(home))
    assert tree.exit_code == 0 and parent.id[:12] in tree.output


def test_cli_unknown_id_is_a_clear_error(populated):
    home, _, _, _ = populated
    result = run_cli("registry", "show", "abcdef123", "--home", str(home))
    assert result.exit_code != 0
