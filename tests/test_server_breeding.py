"""Breeding runs over HTTP end with an event however they end: finished, failed, or interrupted.

The worker is a real ``python -m breedlab.server.breed_worker`` process
breeding on the quick demo's pico ecosystem; these tests stop it before the
lab is done (shutdown, a SIGKILLed server) or make it fail, and read the
registry's events and /proc for what happened.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from breedlab.governance.config import load_governance
from breedlab.registry import Registry
from breedlab.server.admin_breed import take_lock
from breedlab.server.app import create_app
from breedlab.server.config import load_server_config
from breedlab.server.tokens import create_token
from tests.server_fixture import quick_home, serve_app

SERVER_ACTOR = load_server_config().lifecycle.actor


@pytest.fixture()
def world(tmp_path_factory):
    """(home, registry, breeder token) on a fresh copy of the quick demo ecosystem."""
    home = quick_home(tmp_path_factory)
    token = create_token(home.root, load_governance(home.root), "breeder", "breeder")
    return home, Registry.open(home.registry_dir), token


def breeding_events(registry) -> list:
    return [e for e in registry.events() if e.type.startswith("breeding-")]


def workers_of(home) -> list[int]:
    """Pids of live breed_worker processes started for ``home`` (read from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        if b"breedlab.server.breed_worker" in argv and any(str(home.root).encode() in a for a in argv):
            pids.append(int(entry.name))
    return pids


def wait_for(predicate, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def start_breeding(base_url: str, token: str, domain: str = "code") -> dict:
    response = httpx.post(f"{base_url}/admin/breed", json={"domain": domain},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert response.status_code == 202, response.text
    return response.json()


def test_shutdown_stops_the_worker_and_closes_the_bracket(world):
    home, registry, token = world
    app = create_app(home)
    with serve_app(app) as base_url:
        started = start_breeding(base_url, token)
        process = app.state.breedlab.breeding.current.process
        wait_for(lambda: Path(started["log"]).stat().st_size > 0, 120, "the worker wrote nothing to its log")
        assert process.poll() is None  # still breeding when the server is told to stop
    assert process.poll() is not None and not workers_of(home)
    assert [(e.type, e.actor) for e in breeding_events(registry)] == [
        ("breeding-triggered", "breeder"), ("breeding-interrupted", SERVER_ACTOR)]
    assert "again to resume" in breeding_events(registry)[-1].reason
    os.close(take_lock(home.root))  # the lock went with the worker


def test_a_bracket_left_open_is_closed_at_start_unless_someone_holds_the_lock(world):
    home, registry, _ = world
    parent = registry.find(kind="parent")[0].id
    registry.record("breeding-triggered", parent, actor="breeder", reason="by hand", data={"domain": "code"})
    held = take_lock(home.root)  # another server on this home is breeding
    try:
        with serve_app(create_app(home)):
            pass
    finally:
        os.close(held)
    assert [e.type for e in breeding_events(registry)] == ["breeding-triggered"]
    with serve_app(create_app(home)):
        pass
    events = breeding_events(registry)
    assert [e.type for e in events] == ["breeding-triggered", "breeding-interrupted"]
    assert events[-1].actor == SERVER_ACTOR and "found at start" in events[-1].reason


def test_a_worker_that_fails_closes_the_bracket_with_the_error(world):
    home, registry, token = world
    settings = home.root / "lab.yaml"  # the demo's lab settings, which the worker reads
    settings.write_text(settings.read_text() + "no_such_setting: 1\n")
    with serve_app(create_app(home)) as base_url:
        start_breeding(base_url, token)
        events = wait_for(lambda: [e for e in breeding_events(registry) if e.type != "breeding-triggered"], 120,
                          "the failed run recorded no end event")
    assert [e.type for e in events] == ["breeding-failed"]
    assert events[0].actor == "breeder" and "no_such_setting" in events[0].reason
    assert events[0].data["exit_code"] != 0


def test_a_server_killed_mid_breed_leaves_no_worker_and_the_next_start_says_so(world, tmp_path):
    home, registry, token = world
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "breedlab.cli.app", "serve", "--home", str(home.root),
                               "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "serve.log", "wb"))
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(base_url), 120, "breedlab serve did not start")
        start_breeding(base_url, token)
        worker = wait_for(lambda: workers_of(home), 30, "no worker process")[0]
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(30)
    wait_for(lambda: not workers_of(home), 30, f"worker {worker} outlived its SIGKILLed server")
    assert [e.type for e in breeding_events(registry)] == ["breeding-triggered"]
    with serve_app(create_app(home)):
        pass
    assert [e.type for e in breeding_events(registry)] == ["breeding-triggered", "breeding-interrupted"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(base_url: str) -> bool:
    try:
        return httpx.get(f"{base_url}/v1/models", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False
