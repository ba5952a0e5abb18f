"""Breeding triggered over HTTP: what ``POST /admin/breed`` may breed, and the breeding itself.

``breeding.BreedingRuns`` runs ``breed`` in a worker process
(``python -m breedlab.server.breed_worker``); this module holds what both sides
share: the home's breeding lock, the lab settings, the domain check.

The lab always breeds as the breeding identity of governance.yaml (it records
that identity as every candidate's creator). What happens after the lab
depends on who asked:

* a **breeder** token: breeding only. The release packet names the useful
  specialist and its evidence; an approver shadows it with ``/admin/promote``.
  The breeding side never moves its own work (seed 000: separate authority).
* an **approver** token: ``ecosystem.spawn.run_spawn`` end to end, so the
  approver who asked is the actor of the shadow promotion, exactly as the
  living ecosystem's spawn does.

One breeding at a time per home: a non-blocking ``flock`` on
``<home>/breeding.lock`` (released by the kernel if the server dies, so a
crash never leaves the endpoint stuck).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from rich.console import Console

LOCK_FILE = "breeding.lock"


class BreedingBusy(RuntimeError):
    """Another breeding run holds this home's lock."""


def take_lock(home_root: Path) -> int:
    """An fd holding the home's breeding lock; BreedingBusy when another run has it."""
    fd = os.open(Path(home_root) / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise BreedingBusy("a breeding run is already in progress in this home; wait for breeding-finished") from None
    return fd


def breeding_lab_config(home_root: Path):
    """The lab settings a spawn in this home uses.

    A home with a ``lab.yaml`` (``breedlab demo`` writes its profile's ``lab`` overrides
    there) breeds with those settings, exactly as the demo's own spawns did (a pico parent
    needs the pico recipes); any other home gets ``LabConfig``'s defaults. The niche is
    filled in per request.
    """
    from breedlab.lab.run import home_lab_config

    return home_lab_config(home_root, "unset")


def domain_problem(registry, domain: str) -> str | None:
    """Why ``domain`` cannot be bred for (None when its train and held-out test corpora exist)."""
    from breedlab.evaluation.suites import RETENTION_DOMAIN

    if domain == RETENTION_DOMAIN:
        return f"{domain!r} is the retention domain the parent keeps; no child is bred for it"
    missing = [s for s in ("train", "test") if not registry.find(kind="dataset", name=f"{domain}/{s}")]
    return f"no {'/'.join(missing)} corpus for {domain!r} is registered" if missing else None


def breed(registry, home, governance, lab_config, parent_id: str, *, identity: str, role: str,
          console: Console) -> dict:
    """Breed for ``lab_config.niche`` as ``role`` may (runs in the worker process); the outcome for the end event."""
    from types import SimpleNamespace

    from breedlab.ecosystem.spawn import budget_problem, run_spawn
    from breedlab.lab.run import run_lab

    domain = lab_config.niche
    if role == "approver":
        request = SimpleNamespace(domain=domain, sigma=None)  # asked by a person, not fired by the detector
        result = run_spawn(registry, home, request, lab_config, governance, parent_id, approver=identity,
                           console=console)
        return {"reason": result.reason, "child": result.child.id if result.child else None,
                "release": result.release.id if result.release else None}
    # Breeder: the same steps as run_spawn up to its approver step, which is not the breeder's to take.
    problem = budget_problem(registry, governance, domain)
    if problem:
        return {"reason": f"deferred: {problem}", "child": None, "release": None}
    result = run_lab(registry, home, lab_config, console)
    useful = result.selection.useful_specialist
    if not useful:
        return {"reason": "no candidate earned promotion: " + "; ".join(result.selection.reasons),
                "child": None, "release": result.release.id}
    state = registry.get(useful).state
    again = "" if state == "candidate" else f" (the same recipe re-derived it: {state} until now)"
    return {"reason": f"bred {useful[:12]}{again} with evidence {result.evidence[useful][:12]}; an approver may "
                      f"shadow it (POST /admin/promote to=shadow niche={domain})",
            "child": useful, "release": result.release.id, "evidence": result.evidence[useful]}
