"""The crash and fault drill (issue 15): SIGKILL writers at random moments, with a second writer
running throughout, and fill a small disk mid-write; after every kill the record must still hold.

Phases, each a writer (``drill_worker.py``) killed at random moments and restarted:

    register     datasets registered (objects, folder, manifest, then the committing event)
    transition   promotions and retirements (signed state events)
    packet       evidence packets (the evaluator's signature file, then the packet's registration)
    gc           models rejected and collected (the collected event, then the file removals)
    breed        a pico adapter breed checkpointing every step (the checkpoint swap), resumed

A second writer registers datasets for the whole run and is never killed. After every kill:
``registry verify`` finds no problem in the signed home; every operation a worker printed as
committed is in the log (none lost) and no operation is in it twice (none doubled). The breed, once
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
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

WORKER = Path(__file__).with_name("drill_worker.py")
PHASES = ("register", "transition", "packet", "gc")
KEY_IDENTITIES = ("approver", "breeder", "evaluator", "lifecycle")


def start(phase: str, home: Path, tag: str, keys: Path, count: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "BREEDLAB_KEYS": str(keys),
           "OMP_NUM_THREADS": "1"}
    args = [sys.executable, str(WORKER), phase, str(home), tag] + ([str(count)] if count else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)


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
    return _committed(out), worker.returncode == -signal.SIGKILL


def _committed(out: str) -> set[int]:
    return {int(line.split()[2]) for line in out.splitlines() if line.startswith("committed ")}


def ledger_problems(reg, printed: dict[str, set[int]]) -> list[str]:
    """Operations lost (printed as committed, not in the log) or doubled (in it twice)."""
    names = Counter(a.manifest.name for a in reg.find())
    found = [f"{name} registered {n} times" for name, n in names.items() if n > 1]
    ops = defaultdict(Counter)
    for event in reg.events():
        if "op" in event.data and event.type != "registered":
            ops[event.data.get("niche") or event.artifact][event.data["op"]] += 1
    found += [f"{key}: op {op} recorded {n} times" for key, counter in ops.items() for op, n in counter.items() if n > 1]
    for tag, numbers in printed.items():
        found += [f"{tag}: committed op {n} is missing from the log" for n in sorted(numbers) if not _in_log(reg, tag, n)]
    return found


def _in_log(reg, tag: str, number: int) -> bool:
    phase = tag.split("-")[0]
    if phase in ("register", "steady"):
        return bool(reg.find(kind="dataset", name=f"{tag}-{number}"))
    if phase == "transition":
        return any(e.data.get("op") == number for e in reg.events() if e.data.get("niche") == f"drill-{tag}")
    if phase == "packet":
        child = reg.find(kind="child", name=f"{tag}-{number}")
        return bool(child) and any(child[0].id in p.manifest.parents for p in reg.find(kind="packet"))
    child = reg.find(kind="child", name=f"{tag}-{number}")  # gc: the model was rejected (and maybe collected)
    return bool(child) and child[0].state == "rejected"


def checked(root: Path, printed: dict[str, set[int]]) -> list[str]:
    """Everything wrong with the record: verify's problems (under the writer lock, so the second writer
    is never caught between its event and its HEAD), then operations lost or doubled."""
    from breedlab.registry import Registry, verify

    reg = Registry.open(root)
    with reg.writing():
        found = [f"{f.subject}: {f.message}" for f in verify(root) if f.level == "problem"]
    return found + ledger_problems(reg, printed)


def kill_drill(folder: Path, kills: int, rng: random.Random, say) -> tuple[list[dict], dict]:
    """The phases in turn, ``kills`` SIGKILLs in all, with the steady second writer throughout."""
    root, keys = signed_home(folder)
    steady = start("register", root, "steady", keys, count=10**6)
    printed, rows, started = defaultdict(set), [], time.perf_counter()
    for number in range(kills):
        phase = PHASES[number % len(PHASES)]
        tag = f"{phase}-{number // len(PHASES) % 3}"  # each tag is restarted again and again: resumes
        ops, landed = kill_at_random(phase, root, keys, tag, rng, (0.3, 2.0))
        printed[tag] |= ops
        found = checked(root, printed)
        rows.append({"kill": number, "phase": phase, "landed": landed, "ops": len(ops), "problems": found})
        say(number + 1, kills, started, phase, found)
    steady.send_signal(signal.SIGKILL)
    out, _ = steady.communicate()
    printed["steady"] = _committed(out)
    final = checked(root, printed)
    return rows, {"steady_ops": len(printed["steady"]), "final_problems": final,
                  "ops_committed": sum(len(v) for v in printed.values())}


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
        printed = {"register-full": _committed(out)}
        return {"exit": worker.returncode, "clear_error": "No space left on device" in err,
                "committed_before_full": len(printed["register-full"]), "problems": checked(root, printed)}
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def say_progress(done: int, total: int, started: float, phase: str, found: list[str]) -> None:
    elapsed = time.perf_counter() - started
    eta = elapsed / done * (total - done)
    mark = "" if not found else f"  PROBLEMS: {found[:3]}"
    print(f"kill {done}/{total} ({phase})  elapsed {elapsed:.0f}s  ETA {eta:.0f}s{mark}", file=sys.stderr, flush=True)


def run_drill(kills: int, breed_kills: int, seed: int = 20261206) -> dict:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory(prefix="breedlab-drill-") as scratch:
        folder = Path(scratch)
        rows, steady = kill_drill(folder / "kills", kills, rng, say_progress)
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
    args = parser.parse_args()
    result = run_drill(args.kills, args.breed_kills, args.seed)
    if args.out:
        args.out.write_text(json.dumps({"command": " ".join(sys.argv), **result}, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}, indent=1))
    sys.exit(1 if result["corruptions"] else 0)


if __name__ == "__main__":
    main()
