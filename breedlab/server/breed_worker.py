"""The breeding worker process: ``python -m breedlab.server.breed_worker SPEC.json``.

The server never breeds in its own process: a lab is minutes to hours of CPU
and gigabytes of memory that must not share the serving process's GIL, heap
or fate. ``breeding.BreedingRuns`` writes a spec (home, domain, identity,
role, parent, where the outcome goes), starts this module with its stdout and
stderr on the run's log, and records the end event from the outcome file
(written atomically, last) and the exit status.

The worker asks the kernel to SIGTERM it when the thread that started it
dies (``PR_SET_PDEATHSIG``), so a server killed with SIGKILL leaves no
orphaned lab behind; the lab's breeds checkpoint atomically, so a stopped
breed resumes on the next trigger.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """SIGTERM this process when its parent thread dies; exit now if the parent is already gone."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(f"the server (pid {parent_pid}) is gone; not breeding")


def run(spec: dict) -> dict:
    """Breed as the spec says; the outcome for the ``breeding-finished`` event."""
    from rich.console import Console

    from breedlab.governance.config import load_governance
    from breedlab.home import Home
    from breedlab.registry import Registry
    from breedlab.server.admin_breed import breed, breeding_lab_config

    home = Home(Path(spec["home"]))
    registry = Registry.open(home.registry_dir)
    lab_config = breeding_lab_config(home.root)
    console = Console(file=sys.stdout, width=160, force_terminal=False)
    return breed(registry, home, load_governance(home.root), replace(lab_config, niche=spec["domain"]),
                 spec["parent_id"], identity=spec["identity"], role=spec["role"], console=console)


def main(argv: list[str]) -> int:
    from breedlab.registry.atomic import atomic_write_bytes

    spec = json.loads(Path(argv[0]).read_text())
    die_with_parent(spec["server_pid"])
    outcome = run(spec)
    atomic_write_bytes(Path(spec["result"]), json.dumps(outcome, sort_keys=True).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
