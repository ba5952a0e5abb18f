"""One live table of a population's or a search's tasks: running, finished, failed, retried, tokens/s.

Workers report to a ``TaskBoard`` (a Ray actor on a cluster, a plain object in-process) through a
``Reporter``, which is also the live progress display the breed draws its bars into
(``cmg.progress.SharedDisplay``), so the numbers are the breed's own. A task that starts again after its
worker died counts one more attempt: that is what "retried" means here, seen from the task itself.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.table import Table

from breedlab.cmg.progress import SharedDisplay

STATES = ("queued", "running", "finished", "stopped", "failed")
REPORT_SECONDS = 1.0
TOKENS_PER_SECOND = re.compile(r"([\d,]+) tok/s")


@dataclass
class TaskRow:
    label: str
    state: str = "queued"
    attempts: int = 0
    pid: int | None = None
    phase: str = ""
    done: int = 0
    total: int = 0
    tokens_per_s: float | None = None
    started: float | None = None
    ended: float | None = None
    error: str = ""


@dataclass
class TaskBoard:
    """What every task is doing; ``snapshot()`` is what the head draws."""

    rows: dict[str, TaskRow] = field(default_factory=dict)

    def queue(self, key: str, label: str) -> None:
        self.rows.setdefault(key, TaskRow(label))

    def start(self, key: str, pid: int, label: str = "") -> int:
        row = self.rows.setdefault(key, TaskRow(label or key[:12]))
        row.state, row.pid, row.attempts, row.error = "running", pid, row.attempts + 1, ""
        row.started = row.started or time.time()
        return row.attempts

    def progress(self, key: str, phase: str, done: int, total: int, tokens_per_s: float | None) -> None:
        row = self.rows.get(key)
        if row is not None and row.state == "running":
            row.phase, row.done, row.total = phase, done, total
            row.tokens_per_s = tokens_per_s if tokens_per_s is not None else row.tokens_per_s

    def finish(self, key: str, state: str, error: str = "") -> None:
        row = self.rows.setdefault(key, TaskRow(key[:12]))
        row.state, row.error, row.ended = state, error, time.time()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {key: vars(row).copy() for key, row in self.rows.items()}


def call(board: Any, method: str, *args: Any) -> Any:
    """Call ``method`` on a local board, or send it to a board actor (fire and forget)."""
    target = getattr(board, method)
    remote = getattr(target, "remote", None)
    return remote(*args) if remote is not None else target(*args)


def snapshot_of(board: Any) -> dict[str, dict[str, Any]]:
    if hasattr(board.snapshot, "remote"):
        import ray

        return ray.get(board.snapshot.remote())
    return board.snapshot()


class Reporter(SharedDisplay):
    """A worker's side of the board, and the breed's live display: bars become rows of the table."""

    def __init__(self, board: Any, key: str):
        super().__init__(console=Console(file=io.StringIO(), force_terminal=True), progress=None, label="")
        self.board, self.key = board, key
        self.bars: dict[int, dict[str, Any]] = {}
        self.numbers = itertools.count()
        self.sent = 0.0

    def begin(self, label: str = "") -> None:
        """This attempt has started (fire and forget: a task blocked in ``ray.get`` lends its CPU to
        another task, so a worker never waits on the board)."""
        call(self.board, "start", self.key, os.getpid(), label)

    @property
    def live(self) -> "Reporter":
        return self

    def step(self, text: str) -> None:
        call(self.board, "progress", self.key, text, 0, 0, None)

    # the part of rich's Progress that BreedProgress uses
    def add_task(self, description: str, total: int, stats: str = "") -> int:
        number = next(self.numbers)  # never reused: a removed bar's number stays retired
        self.bars[number] = {"phase": description, "done": 0, "total": total, "stats": stats,
                             "start": time.perf_counter()}
        return number

    def advance(self, task: int, amount: int) -> None:
        self.update(task, completed=self.bars[task]["done"] + amount)

    def update(self, task: int, completed: int | None = None, stats: str | None = None) -> None:
        bar = self.bars[task]
        bar["done"] = bar["done"] if completed is None else completed
        bar["stats"] = bar["stats"] if stats is None else stats
        now = time.perf_counter()
        if now - self.sent < REPORT_SECONDS and bar["done"] < bar["total"]:
            return
        self.sent = now
        call(self.board, "progress", self.key, bar["phase"], bar["done"], bar["total"], _rate(bar, now))

    def remove_task(self, task: int) -> None:
        self.bars.pop(task, None)


def _rate(bar: dict[str, Any], now: float) -> float | None:
    """tokens/s: the training bar's own figure, or tokens counted per second on a token-counting phase."""
    found = TOKENS_PER_SECOND.search(bar["stats"] or "")
    if found:
        return float(found.group(1).replace(",", ""))
    if bar["stats"] == "tokens" and now > bar["start"]:
        return bar["done"] / (now - bar["start"])
    return None


def board_table(snapshot: dict[str, dict[str, Any]], title: str) -> Table:
    counts = {state: sum(1 for r in snapshot.values() if r["state"] == state) for state in STATES}
    retried = sum(1 for r in snapshot.values() if r["attempts"] > 1)
    table = Table(title=f"{title}: " + ", ".join(f"{n} {s}" for s, n in counts.items()) + f", {retried} retried")
    for column in ("task", "state", "attempt", "phase", "progress", "tokens/s", "elapsed"):
        table.add_column(column)
    now = time.time()
    for row in snapshot.values():
        progress = f"{row['done']:,}/{row['total']:,}" if row["total"] else ""
        elapsed = (row["ended"] or now) - row["started"] if row["started"] else 0.0
        rate = f"{row['tokens_per_s']:,.0f}" if row["tokens_per_s"] else "-"
        state = row["state"] + (f": {row['error'][:60]}" if row["error"] else "")
        table.add_row(row["label"], state, str(row["attempts"]), row["phase"][:40], progress, rate, f"{elapsed:.0f}s")
    return table


def plain_lines(snapshot: dict[str, dict[str, Any]]) -> list[str]:
    """The same table as lines, for a log file (a nohup run, CI)."""
    lines = []
    for row in snapshot.values():
        rate = f" {row['tokens_per_s']:,.0f} tok/s" if row["tokens_per_s"] else ""
        where = f" {row['phase']} {row['done']:,}/{row['total']:,}" if row["total"] else ""
        lines.append(f"  {row['label']}: {row['state']} (attempt {row['attempts']}){where}{rate}"
                     + (f" {row['error'][:80]}" if row["error"] else ""))
    return lines
