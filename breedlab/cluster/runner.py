"""Run a list of tasks in this process or as Ray tasks, with the live table drawn while they run.

In-process (no ``--ray``) the tasks run one after another, as the lab always has. On Ray each task is a
remote call that declares its CPUs (``num_cpus``): Ray packs them onto the cluster, and a task whose
worker dies is run again (``max_retries``, system failures only: an exception in breedlab's own code is
a failure to report, not a reason to breed again). Failed tasks do not stop the others; the caller
gets each task's result or its error.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from rich.console import Console
from rich.live import Live

from breedlab.cluster.board import TaskBoard, board_table, call, plain_lines, snapshot_of
from breedlab.typed_config import use_home_configs

LINE_SECONDS = 15.0
WORKER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass(frozen=True)
class ClusterOptions:
    """Where tasks run: never part of what they make."""

    ray: str | None = None
    """None: in this process. ``local``: a new local cluster of ``local_cpus`` for this run. ``auto``: the
    running cluster (``$RAY_ADDRESS``, or one ``ray start`` made on this machine), else a new local one.
    Otherwise the address of a running cluster (``ray://host:10001``, ``host:6379``)."""
    cpus_per_task: int = 1
    """CPUs each task declares, and the torch threads it uses."""
    local_cpus: int | None = None
    """CPUs of a local cluster this run starts (None: Ray counts them); an address ignores it."""
    max_retries: int = 2
    """Times Ray runs a task again after its worker died."""
    max_concurrent: int | None = None
    """At most this many search trials at once (None: as many as the cluster's CPUs allow)."""


@contextmanager
def ray_session(options: ClusterOptions) -> Iterator[None]:
    """Ray connected (a cluster this run started is shut down after it); nothing without ``options.ray``."""
    if options.ray is None:
        yield
        return
    import ray

    if ray.is_initialized():
        yield
        return
    settings = dict(include_dashboard=False, log_to_driver=False, runtime_env={"env_vars": worker_env()})
    if options.ray == "auto":
        try:
            ray.init(address="auto", **settings)
        except ConnectionError:  # no cluster running: one of our own
            ray.init(address="local", num_cpus=options.local_cpus, **settings)
    elif options.ray == "local":
        ray.init(address="local", num_cpus=options.local_cpus, **settings)
    else:
        ray.init(address=options.ray, **settings)
    try:
        yield
    finally:
        ray.shutdown()


def worker_env() -> dict[str, str]:
    """What every worker's environment gets: offline hubs, and the key folder the Serve writer signs with
    (a running cluster's workers do not inherit this process's environment)."""
    from breedlab.registry.keys import KEYS_ENV

    keys = os.environ.get(KEYS_ENV)
    return {**WORKER_ENV, **({KEYS_ENV: keys} if keys else {})}


def new_board(options: ClusterOptions) -> Any:
    """The board tasks report to: a Ray actor (zero CPUs: it never takes a breed's core) or an object."""
    if options.ray is None:
        return TaskBoard()
    import ray

    return ray.remote(num_cpus=0)(TaskBoard).remote()


def run_tasks(function: Callable, specs: list, options: ClusterOptions, board: Any, *, title: str,
              console: Console, home_root=None) -> dict[str, Any]:
    """Every spec's result (or the exception that failed it), by spec key."""
    for spec in specs:
        call(board, "queue", spec.key, spec.label)
    with LiveTable(console, board, title) as live:
        if options.ray is None:
            return _in_process(function, specs, board, live, home_root)
        return _on_ray(function, specs, options, board, live)


def _in_process(function: Callable, specs: list, board: Any, live: "LiveTable", home_root) -> dict[str, Any]:
    results = {}
    for spec in specs:
        try:
            results[spec.key] = function(spec, board)
        except Exception as error:  # reported in the table and to the caller; the other tasks still run
            call(board, "finish", spec.key, "failed", f"{type(error).__name__}: {error}")
            results[spec.key] = error
        finally:
            use_home_configs(home_root)  # the task read its own home's configs; the head reads its own
        live.refresh()
    return results


def _on_ray(function: Callable, specs: list, options: ClusterOptions, board: Any, live: "LiveTable") -> dict:
    import ray

    remote = ray.remote(num_cpus=options.cpus_per_task, max_retries=options.max_retries,
                        retry_exceptions=False)(function)
    pending = {remote.remote(spec, board): spec.key for spec in specs}
    results = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
        for ref in ready:
            key = pending.pop(ref)
            try:
                results[key] = ray.get(ref)
            except Exception as error:  # a RayTaskError, or a worker that died more than max_retries times
                call(board, "finish", key, "failed", _short(error))
                results[key] = error
        live.refresh()
    return results


def _short(error: Exception) -> str:
    cause = getattr(error, "cause", None) or error
    return f"{type(cause).__name__}: {str(cause).strip().splitlines()[-1] if str(cause).strip() else ''}"


class LiveTable:
    """The board drawn live on a terminal; elsewhere (a log, CI) as plain lines every ``LINE_SECONDS``.

    A thread redraws it every second, so an in-process breed (which holds the main thread for minutes)
    is as visible as a Ray task."""

    def __init__(self, console: Console, board: Any, title: str):
        self.console, self.board, self.title = console, board, title
        self.live = Live(console=console, refresh_per_second=2) if console.is_terminal else None
        self.printed = time.perf_counter()
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._redraw, daemon=True, name="breedlab-live-table")

    def __enter__(self) -> "LiveTable":
        if self.live is not None:
            self.live.__enter__()
        self.thread.start()
        return self

    def _redraw(self) -> None:
        while not self.stopped.wait(1.0):
            try:
                self.refresh()
            except Exception:  # a board that is gone (Ray shutting down): the run's result still stands
                return

    def refresh(self, force: bool = False) -> None:
        with self.lock:
            self._draw(force)

    def _draw(self, force: bool) -> None:
        snapshot = snapshot_of(self.board)
        if self.live is not None:
            self.live.update(board_table(snapshot, self.title))
        elif force or time.perf_counter() - self.printed >= LINE_SECONDS:
            self.printed = time.perf_counter()
            self.console.print(f"{self.title}:", highlight=False)
            for line in plain_lines(snapshot):
                self.console.print(line, highlight=False)

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()
        self.refresh(force=True)
        if self.live is not None:
            self.live.__exit__(*exc)
