"""The server in a signed home (issue 15): its role tokens are the home's key identities, and every admin
write it makes is signed by the token's identity, so ``registry verify`` checks server promotions as it
checks the CLI's. Runs on a private copy of the quick demo's ecosystem (``server_fixture.quick_home``).
"""

from __future__ import annotations

import httpx
import pytest
from server_fixture import code_candidate, quick_home, running_server

from breedlab.governance.config import load_governance
from breedlab.governance.identities import add_key, adopt_home
from breedlab.registry import Registry, verify
from breedlab.registry.keys import KEYS_ENV, generate_key, load_key
from breedlab.server.tokens import TokenError, create_token


@pytest.fixture(scope="module")
def signed_world(tmp_path_factory):
    """(home, key folder, a candidate with an evaluator-signed passing packet) in an adopted home."""
    home = quick_home(tmp_path_factory)
    (home.root / "governance.yaml").write_text("approvers: [approver, carol]\n")
    keys = tmp_path_factory.mktemp("keys")
    registry = Registry.open(home.registry_dir, signers={})
    adopt_home(registry, keys)
    registry.signers = {name: load_key(name, keys) for name in ("approver", "breeder", "evaluator")}
    return home, keys, code_candidate(registry, "code-signed", seed=2)


def test_a_role_token_needs_an_identity_holding_that_roles_key(signed_world):
    home, keys, _ = signed_world
    governance = load_governance(home.root)
    with pytest.raises(TokenError, match="'carol' holds no key"):
        create_token(home.root, governance, "carol", "approver")
    approver = load_key("approver", keys)
    registry = Registry.open(home.registry_dir, signers={"approver": approver})
    add_key(registry, approver, "carol", "approver", generate_key("carol", keys).public_hex, reason="a second approver")
    assert create_token(home.root, governance, "carol", "approver").startswith("bl_")
    assert create_token(home.root, governance, "alice", "inference")  # inference acts as no key


def test_a_server_promotion_is_signed_by_the_tokens_identity_and_verifies(signed_world, monkeypatch):
    home, keys, candidate = signed_world
    monkeypatch.setenv(KEYS_ENV, str(keys))
    token = create_token(home.root, load_governance(home.root), "approver", "approver")
    with running_server(home) as base_url, httpx.Client(base_url=base_url, timeout=120) as http:
        answer = http.post("/admin/promote", headers={"Authorization": f"Bearer {token}"},
                           json={"candidate": candidate, "to": "shadow", "niche": "code", "reason": "signed"})
    assert answer.status_code == 200, answer.text
    registry = Registry.open(home.registry_dir)
    event = next(e for e in reversed(registry.events(candidate)) if e.type == "promoted")
    assert event.actor == "approver" and event.sig["key"] == load_key("approver", keys).fingerprint
    assert [f.message for f in verify(home.registry_dir) if f.level == "problem"] == []


def test_a_server_without_the_identitys_key_refuses_the_write_and_says_why(signed_world, tmp_path, monkeypatch):
    home, _, candidate = signed_world
    monkeypatch.setenv(KEYS_ENV, str(tmp_path))  # a key folder without the approver's key
    token = create_token(home.root, load_governance(home.root), "approver", "approver")
    before = len(Registry.open(home.registry_dir).events())
    with running_server(home) as base_url, httpx.Client(base_url=base_url, timeout=120) as http:
        answer = http.post("/admin/promote", headers={"Authorization": f"Bearer {token}"},
                           json={"candidate": candidate, "to": "canary", "niche": "code", "reason": "unsigned"})
    assert answer.status_code == 409 and "no private key of 'approver'" in answer.text
    assert len(Registry.open(home.registry_dir).events()) == before


def test_serve_reports_who_it_can_sign_as(signed_world, tmp_path, monkeypatch):
    home, keys, _ = signed_world
    from breedlab.server.setup import signing_report

    monkeypatch.setenv(KEYS_ENV, str(keys))
    report = "\n".join(signing_report(home, "lifecycle"))
    assert "approver: signs its writes" in report and "lifecycle: signs its writes" in report
    monkeypatch.setenv(KEYS_ENV, str(tmp_path))
    assert "approver: [bold red]no private key here" in "\n".join(signing_report(home, "lifecycle"))
