"""Shared server fixtures: a quick-demo ecosystem home and a live server on loopback.

Stable API (the admin and dashboard tests import it):

* ``quick_home(tmp_path_factory) -> Home``: a private copy of the ecosystem that
  ``breedlab demo --quick`` leaves behind (pico parent, a champion child, a retired
  child, a registered router policy). The demo runs once per pytest process
  (about 1.5 minutes on 2 cores); every call copies that pristine run folder into
  a fresh tmp folder, so a test module may promote, roll back or corrupt freely.
  ``BREEDLAB_QUICK_DEMO=<run folder>`` reuses a demo run made earlier instead
  (e.g. ``<home>/demo/quick/latest``), for fast iteration; it is copied too.
* ``running_server(home, config=None) -> contextmanager`` yielding the base URL
  (``http://127.0.0.1:PORT``) of ``create_app(home, config)`` served by uvicorn
  in a thread on a free loopback port; the server drains and stops on exit.
* ``serve_app(app) -> contextmanager`` the same for an app already built (a test
  that needs ``app.state.server`` builds the app itself).
* ``code_candidate(registry, name, seed) -> str``: a copy of the demo's code child
  registered by the breeder, with passing evidence for niche code written by the
  evaluator (signed by its key when the home is signed): something real to promote.

Why a demo run rather than a hand-built registry: the dashboard must show the
lineage of the quick demo's ecosystem, and only the demo produces the real
history (spawns, shadow, canary, champion, prune) the server routes over.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from breedlab.home import Home

QUICK_DEMO_ENV = "BREEDLAB_QUICK_DEMO"
PRISTINE = "quick-demo-pristine"
START_TIMEOUT_S = 120.0


def quick_home(tmp_path_factory) -> Home:
    """A fresh, writable copy of the quick demo's run folder (itself a breedlab home)."""
    source = _pristine_run(tmp_path_factory)
    copy = tmp_path_factory.mktemp("quick-home")
    # symlinks=True keeps the run's ``cache`` link to the demo home's cache (shared, read only here).
    shutil.copytree(source, copy, symlinks=True, dirs_exist_ok=True)
    return Home(copy.resolve())


def _pristine_run(tmp_path_factory) -> Path:
    """The demo run folder, made once per pytest process (or taken from $BREEDLAB_QUICK_DEMO)."""
    given = os.environ.get(QUICK_DEMO_ENV)
    if given:
        return Path(given).resolve()
    home = tmp_path_factory.getbasetemp() / PRISTINE
    latest = home / "demo" / "quick" / "latest"
    if not latest.exists():
        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        run = subprocess.run([sys.executable, "-m", "breedlab.cli.app", "demo", "--quick", "--home", str(home)],
                             capture_output=True, text=True, env=env, timeout=900)
        if run.returncode != 0:
            raise RuntimeError("breedlab demo --quick failed:\n" + run.stdout[-3000:] + run.stderr[-3000:])
    return latest.resolve()


@contextmanager
def running_server(home, config=None) -> Iterator[str]:
    """``create_app(home, config)`` served on a free loopback port; yields its base URL."""
    from breedlab.server.app import create_app

    resolved = home if isinstance(home, Home) else Home(Path(home).resolve())
    with serve_app(create_app(resolved, config)) as base_url:
        yield base_url


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve an ASGI app with uvicorn in a daemon thread; yields ``http://127.0.0.1:PORT``."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; the bound socket is handed to uvicorn
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name=f"uvicorn-{port}")
    thread.start()
    try:
        _wait_started(server, thread)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def _wait_started(server, thread: threading.Thread) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited during startup (see the log above)")
        if time.monotonic() > deadline:
            raise TimeoutError(f"the server did not start within {START_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def code_candidate(registry, name: str, seed: int) -> str:
    """A copy of the demo's code child (``seed`` in its recipe makes the id new), registered by the breeder,
    with a passing evidence packet for niche code on the code child's own suites."""
    from breedlab.evaluation.decision import Decision
    from breedlab.evaluation.fitness import FitnessVector
    from breedlab.evaluation.gates import GateResult
    from breedlab.evaluation.packets import load_packet, write_evidence_packet

    code = next(c for c in registry.find(kind="child") if c.manifest.recipe["domain"] == "code")
    files = {n: code.path / n for n in code.manifest.files if n != "README.md"}
    child = registry.register("child", name, files, operator="cmg", actor="breeder",
                              recipe={**code.manifest.recipe, "seed": seed}, parents=code.manifest.parents)
    packet = next(p for p in registry.find(kind="packet") if p.manifest.recipe.get("candidate") == code.id)
    body = load_packet(registry, packet.id)
    suites = body["suites"]["candidate"]
    parent = FitnessVector(candidate=body["champion"], suites=suites, utility=0.5)
    challenger = FitnessVector(candidate=child.id, suites=suites, utility=0.7)
    gates = [GateResult("general-regression", True, 0.1, 2.0, "within bound")]
    write_evidence_packet(registry, parent, challenger, gates, Decision("promote", ["test evidence"]), niche="code")
    return child.id
