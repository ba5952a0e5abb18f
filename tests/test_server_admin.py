"""Admin authority: bearer tokens with roles, checked before governance, never written anywhere.

Runs on a private copy of the quick demo's ecosystem (``server_fixture.quick_home``).
A loadable candidate with a passing evidence packet is added the way the lab
would (registered by the breeder, evidence against the parent on the code
niche's real suites), so the approver has something real to promote.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import httpx
import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from server_fixture import code_candidate, quick_home, running_server
from typer.testing import CliRunner

from breedlab.cli.tokens import token_app
from breedlab.governance.config import load_governance
from breedlab.governance.niche import current_champion
from breedlab.registry import Registry
from breedlab.server import admin
from breedlab.server.admin_breed import take_lock
from breedlab.server.tokens import (
    TOKEN_FILE,
    TokenEntry,
    TokenError,
    create_token,
    hash_token,
)

ENDPOINTS = {"/admin/promote": {"candidate": "abcdef", "to": "shadow", "niche": "code", "reason": "r"},
             "/admin/rollback": {"niche": "medical", "reason": "r"},
             "/admin/retire": {"model": "abcdef", "niche": "medical", "reason": "r"},
             "/admin/breed": {"domain": "legal"}}  # no corpus: refused before any lab starts


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """(home, registry, tokens by role, the added candidate's id)."""
    home = quick_home(tmp_path_factory)
    registry = Registry.open(home.registry_dir)
    governance = load_governance(home.root)
    tokens = {role: create_token(home.root, governance, identity, role)
              for role, identity in (("approver", "approver"), ("breeder", "breeder"), ("inference", "alice"))}
    return home, registry, tokens, code_candidate(registry, "code-p30-again", seed=1)


@pytest.fixture(scope="module")
def client(world):
    """An httpx client on the real app (``create_app``) served by uvicorn on loopback."""
    home, _, _, _ = world
    with running_server(home) as base_url, httpx.Client(base_url=base_url, timeout=120) as http:
        yield http


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_the_token_file_holds_hashes_only_and_is_private(world):
    home, _, tokens, _ = world
    path = home.root / TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert not any(token in text for token in tokens.values())
    entries = json.loads(text)["tokens"]
    assert {e["sha256"] for e in entries} == {hash_token(t) for t in tokens.values()}
    assert {(e["identity"], e["role"]) for e in entries} == {("approver", "approver"), ("breeder", "breeder"),
                                                             ("alice", "inference")}


def test_a_role_governance_does_not_grant_is_refused_at_creation(world, tmp_path):
    home, _, _, _ = world
    governance = load_governance(home.root)
    for identity, role, why in (("breeder", "approver", "not a configured approver"),
                                ("mallory", "approver", "not a configured approver"),
                                ("approver", "breeder", "breeder role belongs to 'breeder'"),
                                ("breeder", "inference", "breeding identity"),
                                ("alice", "root", "unknown role")):
        with pytest.raises(TokenError, match=why):
            create_token(tmp_path, governance, identity, role)
    assert not (tmp_path / TOKEN_FILE).exists()


def test_the_cli_prints_the_token_once_and_lists_only_hashes(world, tmp_path):
    runner = CliRunner()
    made = runner.invoke(token_app, ["create", "--identity", "approver", "--role", "approver", "--home", str(tmp_path)])
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()
    assert token.startswith("bl_") and len(token) > 40
    listed = runner.invoke(token_app, ["list", "--home", str(tmp_path)])
    assert "approver\tapprover" in listed.stdout and token not in listed.stdout
    refused = runner.invoke(token_app, ["create", "--identity", "breeder", "--role", "approver",
                                        "--home", str(tmp_path)])
    assert refused.exit_code == 2 and "not a configured approver" in refused.stderr


@pytest.mark.parametrize("path", sorted(ENDPOINTS))
def test_no_token_or_an_unknown_one_is_401(client, path):
    for headers in ({}, {"Authorization": "Basic YWRtaW46YWRtaW4="}, {"Authorization": "Bearer"},
                    bearer("bl_not-a-token")):
        response = client.post(path, json=ENDPOINTS[path], headers=headers)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer"


def test_the_breeding_token_cannot_promote_roll_back_or_retire(client, world):
    _, registry, tokens, candidate = world
    before = len(registry.events())
    for path in ("/admin/promote", "/admin/rollback", "/admin/retire"):
        body = {**ENDPOINTS[path], "candidate": candidate} if path == "/admin/promote" else ENDPOINTS[path]
        for role in ("breeder", "inference"):
            response = client.post(path, json=body, headers=bearer(tokens[role]))
            assert response.status_code == 403, response.text
            assert f"holds the {role} role" in response.json()["detail"]
    assert len(registry.events()) == before  # refused before governance was even asked


def test_the_approver_promotes_and_rolls_back_and_the_events_name_them(client, world):
    _, registry, tokens, candidate = world
    for to in ("shadow", "canary", "champion"):
        response = client.post("/admin/promote", headers=bearer(tokens["approver"]),
                               json={"candidate": candidate[:12], "to": to, "niche": "code", "reason": f"live {to}"})
        assert response.status_code == 200, response.text
        assert response.json()["actor"] == "approver" and response.json()["events"][0]["to"] == to
    assert registry.get(candidate).state == "champion"
    promoted = [e for e in registry.events(candidate) if e.type == "promoted"]
    assert [(e.actor, e.data["to"], e.reason) for e in promoted] == [
        ("approver", "shadow", "live shadow"), ("approver", "canary", "live canary"),
        ("approver", "champion", "live champion")]
    response = client.post("/admin/rollback", headers=bearer(tokens["approver"]),
                           json={"niche": "code", "reason": "regressed on live traffic"})
    assert response.status_code == 200, response.text
    assert registry.get(candidate).state == "retired"
    last = [e for e in registry.events() if e.type == "rolled-back"]
    assert last and {e.actor for e in last} == {"approver"} and last[0].artifact == candidate


def test_governance_refusals_are_4xx_with_the_reason(client, world):
    _, registry, tokens, _ = world
    approver = bearer(tokens["approver"])
    policy = registry.find(kind="router-policy")[0].id
    no_evidence = client.post("/admin/promote", headers=approver,
                              json={"candidate": policy, "to": "shadow", "niche": "code", "reason": "hunch"})
    assert no_evidence.status_code == 422 and "no passing evidence" in no_evidence.json()["detail"]
    unknown = client.post("/admin/promote", headers=approver,
                          json={"candidate": "abcdef123456", "to": "shadow", "niche": "code", "reason": "r"})
    assert unknown.status_code == 404
    parent = registry.find(kind="parent")[0].id
    retire_parent = client.post("/admin/retire", headers=approver,
                                json={"model": parent, "niche": "medical", "reason": "r"})
    assert retire_parent.status_code == 409 and "not an active child" in retire_parent.json()["detail"]
    client.post("/admin/rollback", headers=approver, json={"niche": "legal", "reason": "r"})
    nothing = client.post("/admin/rollback", headers=approver, json={"niche": "legal", "reason": "r"})
    assert nothing.status_code == 409 and "no champion" in nothing.json()["detail"]


def test_the_approver_retires_an_active_child(client, world):
    _, registry, tokens, _ = world
    medical = current_champion(registry, "medical")
    response = client.post("/admin/retire", headers=bearer(tokens["approver"]),
                           json={"model": medical.id, "niche": "medical", "reason": "lease ended"})
    assert response.status_code == 200, response.text
    event = registry.events(medical.id)[-1]
    assert (event.type, event.actor, event.data["to"], event.reason) == ("retired", "approver", "retired",
                                                                         "lease ended")


@pytest.mark.parametrize("body", [
    b"{not json", b"[]", b'{"to": "shadow"}', b'{"candidate": "abcdef", "to": "king", "niche": "code", "reason": "r"}',
    b'{"candidate": "../../etc", "to": "shadow", "niche": "code", "reason": "r"}',
    b'{"candidate": "abcdef", "to": "shadow", "niche": "Code Niche", "reason": "r"}',
    b'{"candidate": "abcdef", "to": "shadow", "niche": "code", "reason": ""}',
    b'{"candidate": "abcdef", "to": "shadow", "niche": "code", "reason": "r", "approver": "me"}',
])
def test_bad_admin_input_is_422_never_500(client, world, body):
    _, _, tokens, _ = world
    response = client.post("/admin/promote", content=body,
                           headers={**bearer(tokens["approver"]), "content-type": "application/json"})
    assert response.status_code == 422, response.text


def test_breeding_needs_a_known_domain_and_the_breeding_or_approver_role(client, world):
    _, _, tokens, _ = world
    assert client.post("/admin/breed", json={"domain": "code"}, headers=bearer(tokens["inference"])).status_code == 403
    for domain, why in (("general", "retention domain"), ("legal", "no train/test corpus")):
        response = client.post("/admin/breed", json={"domain": domain}, headers=bearer(tokens["breeder"]))
        assert response.status_code == 422 and why in response.json()["detail"]


def test_the_breeder_breeds_but_never_promotes_and_one_run_at_a_time(client, world):
    home, registry, tokens, _ = world
    held = take_lock(home.root)
    try:
        busy = client.post("/admin/breed", json={"domain": "code"}, headers=bearer(tokens["breeder"]))
        assert busy.status_code == 409 and "already in progress" in busy.json()["detail"]
    finally:
        os.close(held)
    started = client.post("/admin/breed", json={"domain": "code"}, headers=bearer(tokens["breeder"]))
    assert started.status_code == 202 and started.json()["actor"] == "breeder"
    again = client.post("/admin/breed", json={"domain": "code"}, headers=bearer(tokens["breeder"]))
    assert again.status_code == 409  # the first run holds the lock until its lab is done
    bracket = _wait_for_breeding(registry)
    assert [(e.type, e.actor) for e in bracket] == [("breeding-triggered", "breeder"), ("breeding-finished", "breeder")]
    child = bracket[-1].data["child"]
    assert child, bracket[-1].reason
    # The approver shadows it, not the breeder. The lab may re-derive the very child the quick demo
    # bred and later pruned (same recipe, same bytes): then it is still retired, and the reason says so.
    # Which happens depends on the demo's story on this CPU's float path (seen both ways).
    state = registry.get(child).state
    assert state == "candidate" or (state == "retired" and "re-derived it: retired" in bracket[-1].reason)
    assert not [e for e in registry.events(child) if e.type == "promoted" and e.actor == "breeder"]
    assert [e.actor for e in registry.events(child) if e.type == "registered"] == ["breeder"]
    assert "/admin/promote" in bracket[-1].reason


def _wait_for_breeding(registry, timeout_s: float = 600.0) -> list:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        bracket = [e for e in registry.events() if e.type.startswith("breeding-")]
        if bracket and bracket[-1].type != "breeding-triggered":
            return bracket
        time.sleep(0.5)
    raise TimeoutError("breeding did not finish")


def test_inference_keys_when_required(world):
    """``admin.inference_key`` (the /v1 dependency): optional by default, inference or approver role when required."""
    home, _, tokens, _ = world
    app = FastAPI()

    @app.get("/v1/ping")
    def ping(who: Annotated[TokenEntry | None, Depends(admin.inference_key)]) -> dict:
        return {"identity": who.identity if who else None}

    for required in (False, True):
        app.state.breedlab = SimpleNamespace(tokens=admin.load_tokens(home.root),
                                             config=SimpleNamespace(require_inference_key=required))
        with TestClient(app) as http:
            codes = [http.get("/v1/ping", headers=h).status_code
                     for h in ({}, bearer(tokens["inference"]), bearer(tokens["approver"]), bearer(tokens["breeder"]))]
        assert codes == ([200, 200, 200, 200] if not required else [401, 200, 200, 403])


def test_a_token_is_never_written_to_events_logs_or_responses(client, world, caplog, capfd):
    home, _, tokens, _ = world
    caplog.set_level(logging.DEBUG)
    seen = []
    for token in tokens.values():
        for path, body in ENDPOINTS.items():
            seen.append(client.post(path, json=body, headers=bearer(token)).text)
        seen.append(client.post("/admin/promote", headers=bearer(token), content=b"{bad").text)
    out, err = capfd.readouterr()
    texts = [*seen, caplog.text, out, err]
    for root, _, files in os.walk(home.root):
        paths = [Path(root, f) for f in files if not Path(root, f).is_symlink()]
        texts.extend(p.read_bytes().decode("latin-1") for p in paths)
    for token in tokens.values():
        assert not any(token in text for text in texts)
