"""Breeding runs started over HTTP, each in a worker process the server watches and can stop.

Every run is bracketed by events on the parent naming the acting identity:
``breeding-triggered``, then exactly one of ``breeding-finished`` (the worker
wrote its outcome and exited 0), ``breeding-failed`` (it exited otherwise; the
reason quotes the log's last line) or ``breeding-interrupted`` (the server
stopped it at shutdown, or found at start that a server died mid-run). The
server records all of them, so the bracket closes however the worker ends.

Shutdown does not wait for a lab (hours, possibly): it SIGTERMs the worker,
gives it ``STOP_GRACE_S``, then SIGKILLs it. Nothing is lost by that: the
registry's writes are atomic and the breeds checkpoint, so triggering the same
domain again resumes where the run stopped.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from breedlab.server.admin_breed import take_lock

log = logging.getLogger("breedlab.server")
STOP_GRACE_S = 10.0
RESUME_HINT = "trigger breeding for {domain} again to resume from the lab's checkpoints"


@dataclass
class Run:
    """One breeding run: who asked, where its log and outcome go, its worker process."""

    domain: str
    identity: str
    role: str
    log: Path
    result: Path
    process: subprocess.Popen | None = None
    stopping: bool = False
    spawned: threading.Event = field(default_factory=threading.Event)
    ended: threading.Event = field(default_factory=threading.Event)


class BreedingRuns:
    """At most one breeding worker per home (the home's flock), watched by a thread of its own."""

    def __init__(self, registry, home, parent_id: str, *, server_actor: str) -> None:
        self.registry, self.home, self.parent_id = registry, home, parent_id
        self.server_actor = server_actor
        """The identity of events the server makes itself (an interruption), not the person who asked."""
        self.current: Run | None = None

    def reconcile(self) -> None:
        """Close a bracket a dead server left open (its lock is free again: no one is breeding)."""
        last = next((e for e in reversed(self.registry.events()) if e.type.startswith("breeding-")), None)
        if last is None or last.type != "breeding-triggered":
            return
        try:
            fd = take_lock(self.home.root)
        except RuntimeError:
            return  # another server on this home is breeding right now: its bracket is open for a reason
        try:
            domain = last.data.get("domain", "?")
            self.registry.record("breeding-interrupted", self.parent_id, actor=self.server_actor,
                                 reason=f"found at start: the server stopped while breeding (event {last.seq}); "
                                        + RESUME_HINT.format(domain=domain), data={"domain": domain})
        finally:
            os.close(fd)

    def start(self, domain: str, *, identity: str, role: str) -> Run:
        """Take the lock (BreedingBusy if held), record ``breeding-triggered``, start the worker."""
        fd = take_lock(self.home.root)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        base = self.home.logs_dir / f"breed-{domain}-{stamp}"
        run = Run(domain, identity, role, base.with_suffix(".log"), base.with_suffix(".json"))
        try:
            self.registry.record("breeding-triggered", self.parent_id, actor=identity,
                                 reason=f"{role} asked to breed for {domain}",
                                 data={"domain": domain, "role": role, "log": str(run.log)})
        except BaseException:
            os.close(fd)
            raise
        self.current = run
        threading.Thread(target=self._watch, args=(fd, run), name=f"breeding-{domain}", daemon=True).start()
        run.spawned.wait()
        return run

    def close(self, grace_s: float = STOP_GRACE_S) -> None:
        """Stop a running worker (SIGTERM, then SIGKILL after ``grace_s``) and wait for its end event."""
        run = self.current
        if run is None or run.ended.is_set():
            return
        run.stopping = True
        if run.process is not None and run.process.poll() is None:
            log.warning("stopping the breeding run for %s (pid %d)", run.domain, run.process.pid)
            _signal_group(run.process, signal.SIGTERM)
            try:
                run.process.wait(grace_s)
            except subprocess.TimeoutExpired:
                _signal_group(run.process, signal.SIGKILL)
        run.ended.wait(grace_s + 5.0)

    def _watch(self, fd: int, run: Run) -> None:
        """The run's thread: start the worker (PR_SET_PDEATHSIG is tied to this thread), wait, record the end."""
        try:
            spec = run.log.with_suffix(".spec.json")
            spec.write_text(json.dumps({"home": str(self.home.root), "domain": run.domain, "identity": run.identity,
                                        "role": run.role, "parent_id": self.parent_id, "result": str(run.result),
                                        "server_pid": os.getpid()}))
            with open(run.log, "wb") as stream:
                run.process = subprocess.Popen([sys.executable, "-m", "breedlab.server.breed_worker", str(spec)],
                                               stdout=stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                               start_new_session=True)  # a terminal's Ctrl-C reaches the server only
                run.spawned.set()
                code = run.process.wait()
            self._record_end(run, code)
        except Exception as error:  # noqa: BLE001 - the bracket must close whatever went wrong here
            log.exception("breeding run for %s", run.domain)
            self._record(run, "breeding-failed", f"{type(error).__name__}: {error}", {})
        finally:
            run.spawned.set()
            os.close(fd)  # releases the home's breeding lock
            run.ended.set()

    def _record_end(self, run: Run, code: int) -> None:
        if code == 0 and run.result.is_file():
            outcome = json.loads(run.result.read_text())
            self._record(run, "breeding-finished", outcome.pop("reason"), outcome)
        elif run.stopping:
            self._record(run, "breeding-interrupted", "the server shut down while breeding; "
                         + RESUME_HINT.format(domain=run.domain), {"exit_code": code}, actor=self.server_actor)
        else:
            self._record(run, "breeding-failed", f"worker exited {code}: {_last_line(run.log)}", {"exit_code": code})

    def _record(self, run: Run, event_type: str, reason: str, data: dict, actor: str | None = None) -> None:
        self.registry.record(event_type, self.parent_id, actor=actor or run.identity, reason=reason[:400],
                             data={"domain": run.domain, "log": str(run.log), **data})


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # the worker leads its own session: its group is its pid
    except ProcessLookupError:
        pass


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()] if path.is_file() else []
    return lines[-1][:300] if lines else "(the log is empty)"
