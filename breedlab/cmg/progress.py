"""The breed's progress display: one bar per phase, and a training bar with loss, tokens/s and ETA.

On a terminal, rich draws live bars. Anywhere else (a log file, a pipe, the
demo's background lab) a live display draws nothing until the end, which is
minutes of silence on this CPU; there the same numbers go out as plain lines,
at most one every ``LINE_SECONDS`` per bar plus one when a bar completes.

A caller that already shows a live display (the demo's replay bar) hands it
over as a ``SharedDisplay``: the breed's bars are drawn into it, labelled, and
removed when the breed ends, since rich allows one live display per console.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from breedlab.cmg.recipe import CMGRecipe

LINE_SECONDS = 15.0


def progress_columns() -> tuple:
    """The columns of every breedlab bar: what, how far, the phase's numbers (loss, tokens/s), ETA."""
    return (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn())


@dataclass
class SharedDisplay:
    """A live display owned by the caller, that a lab and its breeds draw into instead of their own.

    ``progress`` is a running rich ``Progress`` built with ``progress_columns()`` (None, or a console
    that is not a terminal: plain lines on ``console``); ``label`` prefixes every line (``medical lab``).
    """

    console: Console
    progress: Progress | None = None
    label: str = ""

    @property
    def live(self) -> Progress | None:
        return self.progress if self.console.is_terminal else None

    def step(self, text: str) -> None:
        """A new step of the caller's work: a line above the bars (rich keeps bars at the bottom)."""
        self.console.print(f"        [dim]{self.label}:[/] {text}", highlight=False)


class PlainLines:
    """Plain-text progress for a console that is not a terminal."""

    def __init__(self, console: Console, prefix: str = ""):
        self.console, self.prefix = console, prefix
        self.tasks: dict[int, dict] = {}

    def add(self, label: str, total: int) -> int:
        self.tasks[len(self.tasks)] = {"label": label, "total": total, "done": 0, "start": time.perf_counter(),
                                       "printed": 0.0}
        return len(self.tasks) - 1

    def advance(self, task: int, amount: int, stats: str = "") -> None:
        self.update(task, self.tasks[task]["done"] + amount, stats)

    def update(self, task: int, done: int, stats: str = "") -> None:
        entry = self.tasks[task]
        entry["done"] = done
        now = time.perf_counter()
        finished = done >= entry["total"]
        if not finished and now - entry["printed"] < LINE_SECONDS:
            return
        entry["printed"] = now
        elapsed = now - entry["start"]
        eta = elapsed / done * (entry["total"] - done) if done else float("nan")
        self.console.print(f"{self.prefix}{entry['label']}: {done:,}/{entry['total']:,} ({done / entry['total']:.0%}) "
                           f"{stats}  elapsed {elapsed:.0f}s  ETA {eta:.0f}s", highlight=False)


class BreedProgress:
    def __init__(self, enabled: bool, recipe: CMGRecipe, console: Console | None = None,
                 display: SharedDisplay | None = None):
        self.recipe = recipe
        console = display.console if display is not None else console or Console(stderr=True)
        prefix = f"        {display.label}: " if display is not None and display.label else ""
        self.lines = PlainLines(console, prefix) if enabled and not console.is_terminal else None
        shared = display.live if display is not None and enabled else None
        self.owned = shared is None
        self.label = prefix.strip()
        self.progress = shared or Progress(*progress_columns(), disable=not enabled or self.lines is not None,
                                           console=console)
        self.tasks: list = []

    def __enter__(self) -> "BreedProgress":
        if self.owned:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.owned:
            self.progress.__exit__(*exc)
        for task in self.tasks:  # a shared display outlives the breed: take its bars away
            self.progress.remove_task(task)

    def _add(self, label: str, total: int, stats: str) -> int:
        task = self.progress.add_task(f"{self.label} {label}".strip(), total=total, stats=stats)
        if not self.owned:
            self.tasks.append(task)
        return task

    def phase(self, label: str, total_tokens: int) -> Callable[[int], None]:
        """A bar counting tokens; returns the callback that advances it."""
        task = self._add(label, total_tokens, "tokens")
        if self.lines is None:
            return lambda tokens: self.progress.advance(task, tokens)
        line = self.lines.add(label, total_tokens)
        return lambda tokens: self.lines.advance(line, tokens, "tokens")

    def training(self, label: str) -> Callable[[int, dict, object], None]:
        task = self._add(label, self.recipe.total_steps, "")
        line = self.lines.add(f"{label} (steps)", self.recipe.total_steps) if self.lines else None

        def on_step(step: int, record: dict, result) -> None:
            rate = result.run_tokens / result.seconds if result.seconds else 0.0
            stats = f"loss {record['loss']:.3f}  ce {record['ce']:.3f}  kd {record['kd']:.3f}  {rate:,.0f} tok/s"
            self.progress.update(task, completed=step, stats=stats)
            if line is not None:
                self.lines.update(line, step, stats)

        return on_step
