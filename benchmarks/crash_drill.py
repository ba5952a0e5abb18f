"""The crash and fault drill (issue 15): SIGKILL writers at random moments, with a second writer
running throughout, and fill a small disk mid-write; after every kill the record must still hold.

Phases, each a writer (``drill_worker.py``) killed at random moments and restarted:

    register     datasets registered (objects, folder, manifest, then the committing event)
    transition   promotions and retirements (signed state events)
    packet       evidence packets (the evaluator's signature file, then the packet's registration)
    gc           models rejected and collected (the collected event, then the file removals)
    server       a real ``breedlab serve`` killed while a client promotes candidates through its admin
                 API (shadow, canary, champion: the crowning and the retirement it causes are one append)
    breed        a pico adapter breed checkpointing every step (the checkpoint swap), resumed

The home is a signed copy of a quick demo run (``--demo``, else one is made: about 2 minutes), so the
server has real models to serve. Two writers run for the whole run and are never killed: a CLI writer
registering datasets, and a second server whose client promotes through it. After every kill:
``registry verify`` finds no problem in the signed home; every operation a worker printed as
committed is in the log (none lost), no operation is in it twice (none doubled), and no niche has two
champions. The breed, once
let finish, registers the id an uninterrupted breed of the same recipe gets. ENOSPC: a writer on a
4 MiB tmpfs home (when this process may mount one) fails with a clear error and leaves the home
verifiable.

    .venv/bin/python benchmarks/crash_drill.py --kills 1000          # the drill (about 20 minutes)
    .venv/bin/python benchmarks/crash_drill.py --kills 30 --breed-kills 3   # what the test suite runs

Loopback only; everything stays under a temporary folder. Results: a table of kills by phase and the
corruptions found (the target: 0), and ``--out FILE`` for the raw rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from pathlib import Path

from drill_checks import checked, committed_ops  # noqa: E402  (beside this file)

WORKER = Path(__file__).with_name("drill_worker.py")
PHASES = ("register", "transition", "packet", "gc", "server")
DRILL_BUDGETS = "max_active_children: 1000\nmax_children_per_niche: 2\nmax_total_weight_bytes: 100000000000\n"
"""The drill's home governance: every tag's niche holds its own champion and challenger at once."""
KEY_IDENTITIES = ("approver", "breeder", "evaluator", "lifecycle")


def start(phase: str, home: Path, tag: str, keys: Path, count: int | None = None,
          server: tuple[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "BREEDLAB_KEYS": str(keys),
           "OMP_NUM_THREADS": "1", **({"DRILL_SERVER": server[0], "DRILL_TOKEN": server[1]} if server else {})}
    args = [sys.executable, str(WORKER), phase, str(home), tag] + ([str(count)] if count else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


def start_server(root: Path, keys: Path) -> tuple[subprocess.Popen, str]:
    """``breedlab serve`` on the drill's home and a free loopback port; returns once it answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-m", "breedlab.cli.app", "serve", "--home", str(root.parent),
                               "--port", str(port), "--keys", str(keys)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 180
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if urllib.request.urlopen(url + "/v1/models", timeout=5).status == 200:
                return server, url
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError(f"the drill's server did not start (exit {server.poll()})")


def kill_server_at_random(root: Path, keys: Path, tag: str, token: str, rng: random.Random):
    """Start a server and a client promoting through it; SIGKILL the server mid-stream."""
    server, url = start_server(root, keys)
    client = start("server", root, tag, keys, server=(url, token))
    first = client.stdout.readline()  # promotions are flowing (the client prepares candidates first)
    time.sleep(rng.uniform(0.0, 1.5))
    server.send_signal(signal.SIGKILL)
    server.wait()
    out, _ = client.communicate(timeout=300)  # the client stops at its first failed request
    return committed_ops(first + out), server.returncode == -signal.SIGKILL


def drill_home(folder: Path, demo: Path) -> tuple[Path, Path, str]:
    """A signed copy of a quick demo run (its models are real, so a server can serve them), the key
    folder beside it (never inside), and an approver token for the servers."""
    from breedlab.governance.config import load_governance
    from breedlab.governance.identities import adopt_home
    from breedlab.registry import Registry
    from breedlab.server.tokens import create_token

    home, keys = folder / "home", folder / "keys"
    shutil.copytree(demo, home, symlinks=True)
    (home / "governance.yaml").write_text(DRILL_BUDGETS)
    adopt_home(Registry.open(home / "registry", signers={}), keys)
    return home / "registry", keys, create_token(home, load_governance(home), "approver", "approver")


def quick_demo(folder: Path) -> Path:
    """A ``breedlab demo --quick`` run folder made under ``folder`` (about 2 minutes on 2 cores)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-m", "breedlab.cli.app", "demo", "--quick", "--home", str(folder)],
                   env=env, check=True, capture_output=True, timeout=1800)
    return (folder / "demo" / "quick" / "latest").resolve()


def signed_home(folder: Path) -> tuple[Path, Path]:
    """A registry adopted into signed authority, and the key folder beside it (never inside)."""
    from breedlab.governance.identities import adopt_home
    from breedlab.registry import Registry

    root, keys = folder / "home" / "registry", folder / "keys"
    adopt_home(Registry.open(root, signers={}), keys)
    return root, keys


def kill_at_random(phase: str, root: Path, keys: Path, tag: str, rng: random.Random, delay: tuple[float, float]):
    """Start a writer, SIGKILL it after a random delay; (its committed ops, whether the kill landed)."""
    worker = start(phase, root, tag, keys)
    time.sleep(rng.uniform(*delay))
    worker.send_signal(signal.SIGKILL)
    out, _ = worker.communicate()
    return committed_ops(out), worker.returncode == -signal.SIGKILL


def kill_drill(folder: Path, kills: int, rng: random.Random, say, demo: Path) -> tuple[list[dict], dict]:
    """The phases in turn, ``kills`` SIGKILLs in all, with the two steady writers (CLI, server) throughout."""
    root, keys, token = drill_home(folder, demo)
    steady = start("register", root, "steady", keys, count=10**6)
    steady_server, url = start_server(root, keys)
    steady_client = start("server", root, "steady-server", keys, count=10**6, server=(url, token))
    printed, rows, started = defaultdict(set), [], time.perf_counter()
    for number in range(kills):
        phase = PHASES[number % len(PHASES)]
        tag = f"{phase}-{number // len(PHASES) % 3}"  # each tag is restarted again and again: resumes
        if phase == "server":
            ops, landed = kill_server_at_random(root, keys, tag, token, rng)
        else:
            ops, landed = kill_at_random(phase, root, keys, tag, rng, (0.3, 2.0))
        printed[tag] |= ops
        found = checked(root, printed)
        rows.append({"kill": number, "phase": phase, "landed": landed, "ops": len(ops), "problems": found})
        say(number + 1, kills, started, phase, found)
    for writer, tag in ((steady, "steady"), (steady_client, "steady-server")):
        writer.send_signal(signal.SIGKILL)
        printed[tag] = committed_ops(writer.communicate()[0])
    steady_server.send_signal(signal.SIGKILL)
    steady_server.wait()
    final = checked(root, printed)
    return rows, {"steady_ops": len(printed["steady"]), "steady_server_ops": len(printed["steady-server"]),
                  "final_problems": final, "ops_committed": sum(len(v) for v in printed.values())}


def breed_drill(folder: Path, kills: int, rng: random.Random, steps: int = 40) -> dict:
    """A breed killed ``kills`` times, then let finish: its id against an uninterrupted breed's."""
    from breedlab.governance.identities import adopt_home
    from breedlab.home import Home
    from breedlab.lab.pico_home import build_pico_lab
    from breedlab.registry import Registry

    ids, found = {}, []
    for name, kill_count in (("reference", 0), ("killed", kills)):
        root, keys = folder / name / "home" / "registry", folder / name / "keys"
        registry = Registry.open(root)
        build_pico_lab(registry, Home.resolve(root.parent).cache_dir)  # the pico lab first, then signed
        adopt_home(registry, keys)
        for _ in range(kill_count):
            kill_at_random("breed", root, keys, "breed", rng, (4.0, 12.0))
            found += checked(root, {})
        worker = start("breed", root, "breed", keys, count=steps)
        out, err = worker.communicate(timeout=900)
        bred = [line.split()[1] for line in out.splitlines() if line.startswith("bred ")]
        ids[name] = bred[0] if bred else f"failed: {err[-400:]}"
        found += checked(root, {})
    return {"kills": kills, "same_id": ids["reference"] == ids["killed"], **ids, "problems": found}


def enospc_drill(folder: Path) -> dict:
    """A writer on a 4 MiB tmpfs home until the disk is full: a clear error, and a verifiable home."""
    mount = folder / "tiny"
    mount.mkdir()
    tried = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True,
                           text=True)
    if tried.returncode != 0:
        return {"skipped": f"cannot mount a tmpfs here ({tried.stderr.strip() or tried.returncode})"}
    try:
        root, keys = signed_home(mount)
        worker = start("register", root, "register-full", keys, count=100)
        out, err = worker.communicate(timeout=300)
        printed = {"register-full": committed_ops(out)}
        return {"exit": worker.returncode, "clear_error": "No space left on device" in err,
                "committed_before_full": len(printed["register-full"]), "problems": checked(root, printed)}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def say_progress(done: int, total: int, started: float, phase: str, found: list[str]) -> None:
    elapsed = time.perf_counter() - started
    eta = elapsed / done * (total - done)
    mark = "" if not found else f"  PROBLEMS: {found[:3]}"
    print(f"kill {done}/{total} ({phase})  elapsed {elapsed:.0f}s  ETA {eta:.0f}s{mark}", file=sys.stderr, flush=True)


def run_drill(kills: int, breed_kills: int, seed: int = 20261206, demo: Path | None = None) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="breedlab-drill-") as scratch:
        folder = Path(scratch)
        demo = demo or quick_demo(folder / "demo-home")
        rows, steady = kill_drill(folder / "kills", kills, rng, say_progress, demo)
        breed = breed_drill(folder / "breed", breed_kills, rng)
        disk = enospc_drill(folder)
    by_phase = Counter(r["phase"] for r in rows)
    corrupt = sum(1 for r in rows if r["problems"]) + bool(steady["final_problems"]) + bool(breed["problems"]) \
        + bool(disk.get("problems"))
    return {"kills": kills + breed_kills, "by_phase": {**by_phase, "breed": breed_kills},
            "landed": sum(r["landed"] for r in rows), "corruptions": corrupt, "steady_writer": steady,
            "breed": breed, "enospc": disk, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=1000, help="SIGKILLs across the writing phases")
    parser.add_argument("--breed-kills", type=int, default=10, help="SIGKILLs of the breed (checkpoint swap)")
    parser.add_argument("--seed", type=int, default=20261206)
    parser.add_argument("--out", type=Path, default=None, help="raw rows as JSON")
    parser.add_argument("--demo", type=Path, default=None,
                        help="a `breedlab demo --quick` run folder to copy [default: make one, about 2 minutes]")
    args = parser.parse_args()
    result = run_drill(args.kills, args.breed_kills, args.seed, args.demo)
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    sys.exit(1 if result["corruptions"] else 0)


if __name__ == "__main__":
    main()
