"""Signed authority (issue 15, part 1): keys outside the home, signed events, and what verify refuses."""

from __future__ import annotations

import json
import os
from dataclasses import replace

import pytest
from registry_helpers import register_weights

from breedlab.governance.identities import add_key, adopt_home, keys_of, revoke_key, rotate_key
from breedlab.registry import Registry, RegistryError, verify
from breedlab.registry.events import Event, EventLog
from breedlab.registry.keys import KeyFileError, generate_key, load_key


@pytest.fixture()
def home(tmp_path):
    """An adopted registry whose keys live in a folder beside it (never inside it)."""
    keys = tmp_path / "keys"
    reg = Registry.open(tmp_path / "registry", signers={})
    approver, made = adopt_home(reg, keys)
    assert sorted(made) == ["approver", "breeder", "evaluator", "lifecycle"]
    reg.signers = {name: load_key(name, keys) for name in made}
    return reg, keys, approver


def problems(reg, **kwargs) -> list[str]:
    return [f.message for f in verify(reg.root, **kwargs) if f.level == "problem"]


def append_by_hand(reg: Registry, event_type: str, artifact: str, actor: str, data: dict, sign_with=None) -> None:
    """What a process with write access but without the right key could do: a correctly chained line."""
    last = reg.log.last()
    draft = Event(seq=last.seq + 1, ts="2026-12-06T00:00:00.000000Z", type=event_type, artifact=artifact,
                  actor=actor, reason="forged", prev=last.hash, data=data)
    if sign_with is not None:
        draft = replace(draft, sig=sign_with.sign(draft.signed_body()))
    event = replace(draft, hash=draft.expected_hash())
    with open(reg.log.path, "ab") as stream:
        stream.write(event.line())
    reg.log.head_path.write_text(json.dumps({"seq": event.seq, "hash": event.hash}))


def test_an_adopted_home_signs_every_event_and_verifies_clean(home, tmp_path):
    reg, keys, approver = home
    model = register_weights(reg, tmp_path, kind="child", actor="breeder")
    reg.transition(model.id, "shadow", event_type="promoted", actor="approver", reason="evidence")
    assert all(e.sig for e in reg.events())
    assert problems(reg, anchor=approver.fingerprint) == []
    assert not any(p.name.endswith(".key") for p in reg.root.rglob("*"))  # no private key in the home
    assert oct(os.stat(keys / "approver.key").st_mode & 0o777) == "0o600"


def test_a_correctly_chained_event_without_a_signature_fails_verify_naming_its_actor(home, tmp_path):
    reg, *_ = home
    model = register_weights(reg, tmp_path, kind="child", actor="breeder")
    append_by_hand(reg, "promoted", model.id, "approver", {"from": "candidate", "to": "champion"})
    found = problems(reg)
    assert len(found) == 1 and "claims actor 'approver'" in found[0] and "no signature" in found[0]


def test_an_event_signed_by_a_key_no_key_event_added_fails_verify(home, tmp_path):
    reg, *_ = home
    model = register_weights(reg, tmp_path, kind="child", actor="breeder")
    intruder = generate_key("approver", tmp_path / "intruder")
    append_by_hand(reg, "promoted", model.id, "approver", {"from": "candidate", "to": "champion"}, intruder)
    assert any("which no approver-signed key event added" in p for p in problems(reg))


def test_a_breeder_key_may_not_promote_and_an_evaluator_alone_writes_packets(home, tmp_path):
    reg, *_ = home
    model = register_weights(reg, tmp_path, kind="child", actor="breeder")
    append_by_hand(reg, "promoted", model.id, "breeder", {"from": "candidate", "to": "shadow"},
                   reg.signers["breeder"])
    assert any("a breeder may not write 'promoted'" in p for p in problems(reg))


def test_a_process_without_the_actors_key_cannot_write_to_an_adopted_home(home, tmp_path, monkeypatch):
    reg, *_ = home
    monkeypatch.setenv("BREEDLAB_KEYS", str(tmp_path / "empty"))
    stranger = Registry.open(reg.root)
    with pytest.raises(KeyFileError, match="no private key of 'breedlab'"):
        register_weights(stranger, tmp_path)


def test_events_before_adoption_are_unsigned_not_corrupt(tmp_path):
    reg = Registry.open(tmp_path / "registry", signers={})
    register_weights(reg, tmp_path, name="old")
    approver, _ = adopt_home(reg, tmp_path / "keys")
    notes = [f.message for f in verify(reg.root) if f.level == "note"]
    assert problems(reg) == [] and any("events 1-1 predate adoption" in n for n in notes)
    with pytest.raises(RegistryError, match="already adopted"):
        adopt_home(reg, tmp_path / "keys")


def test_the_trust_anchor_and_the_expected_head_catch_a_rewritten_history(home, tmp_path):
    reg, _, approver = home
    other = generate_key("approver", tmp_path / "other")
    assert any("not the trust anchor" in p for p in problems(reg, anchor=other.fingerprint))
    head = reg.log.last().hash
    assert problems(reg, expect_head=head) == []
    assert any("expected hash" in p for p in problems(reg, expect_head="f" * 64))


def test_rotation_and_revocation_are_approver_signed_and_old_keys_stop_counting(home, tmp_path):
    reg, keys, approver = home
    old = reg.signers["breeder"]
    new = rotate_key(reg, approver, "breeder", keys)
    assert (keys / "breeder.key").exists() and new.fingerprint != old.fingerprint
    assert [k.identity for k in keys_of(reg).values() if not k.active] == ["breeder"]
    append_by_hand(reg, "spawn-requested", "home", "breeder", {}, old)
    assert any("revoked or replaced" in p for p in problems(reg))


def test_key_changes_need_an_approver_and_keep_one_role_per_identity(home, tmp_path):
    reg, keys, approver = home
    with pytest.raises(RegistryError, match="not an active approver key"):
        add_key(reg, reg.signers["breeder"], "auditor", "evaluator", "00" * 32, "no")
    with pytest.raises(RegistryError, match="keeps its one role"):
        add_key(reg, approver, "breeder", "approver", "00" * 32, "no")
    with pytest.raises(RegistryError, match="last approver key"):
        revoke_key(reg, approver, "approver", "no")


def test_a_key_file_others_can_read_is_refused(tmp_path):
    key = generate_key("approver", tmp_path)
    (tmp_path / "approver.key").chmod(0o644)
    with pytest.raises(KeyFileError, match="readable by others"):
        load_key("approver", tmp_path)
    assert key.fingerprint


def test_an_unsigned_home_keeps_its_bytes(tmp_path):
    reg = Registry.open(tmp_path / "registry", signers={})
    register_weights(reg, tmp_path)
    line = EventLog(reg.root).path.read_bytes().splitlines()[0]
    assert b'"sig"' not in line  # homes that never adopt write what they always wrote


def test_the_cli_adopts_lists_and_verifies_with_the_anchor(tmp_path):
    from typer.testing import CliRunner

    from breedlab.cli.app import app

    home, keys = tmp_path / "home", tmp_path / "keys"
    run = CliRunner().invoke
    adopted = run(app, ["keys", "init", "--keys", str(keys), "--home", str(home)])
    assert adopted.exit_code == 0, adopted.output
    anchor = load_key("approver", keys).fingerprint
    assert anchor in adopted.output.replace("\n", "")
    added = run(app, ["keys", "add", "auditor", "--role", "evaluator", "--keys", str(keys), "--home", str(home)])
    assert added.exit_code == 0, added.output
    listed = run(app, ["keys", "list", "--home", str(home)])
    assert "auditor" in listed.output and "evaluator" in listed.output
    clean = run(app, ["registry", "verify", "--anchor", anchor, "--home", str(home)])
    assert clean.exit_code == 0, clean.output
    reg = Registry.open(home / "registry", signers={})
    append_by_hand(reg, "key-added", "home", "approver", {"identity": "mallory", "role": "approver",
                                                           "public": "00" * 32})
    forged = run(app, ["registry", "verify", "--anchor", anchor, "--home", str(home)])
    assert forged.exit_code == 1 and "claims actor 'approver'" in forged.output
