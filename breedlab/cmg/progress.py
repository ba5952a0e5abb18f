"""The breed's progress display: one bar per phase, and a training bar with loss, tokens/s and ETA.

On a terminal, rich draws live bars. Anywhere else (a log file, a pipe, the
demo's background lab) a live display draws nothing until the end, which is
minutes of silence on this CPU; there the same numbers go out as plain lines,
at most one every ``LINE_SECONDS`` per bar plus one when a bar completes.
"""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .recipe import CMGRecipe

LINE_SECONDS = 15.0


class _Lines:
    """Plain-text progress for a console that is not a terminal."""

    def __init__(self, console: Console):
        self.console = console
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
        self.console.print(f"{entry['label']}: {done:,}/{entry['total']:,} ({done / entry['total']:.0%}) "
                           f"{stats}  elapsed {elapsed:.0f}s  ETA {eta:.0f}s", highlight=False)


class BreedProgress:
    def __init__(self, enabled: bool, recipe: CMGRecipe, console: Console | None = None):
        self.recipe = recipe
        console = console or Console(stderr=True)
        self.lines = _Lines(console) if enabled and not console.is_terminal else None
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
            disable=not enabled or self.lines is not None, console=console,
        )

    def __enter__(self) -> "BreedProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def phase(self, label: str, total_tokens: int) -> Callable[[int], None]:
        """A bar counting tokens; returns the callback that advances it."""
        task = self.progress.add_task(label, total=total_tokens, stats="tokens")
        if self.lines is None:
            return lambda tokens: self.progress.advance(task, tokens)
        line = self.lines.add(label, total_tokens)
        return lambda tokens: self.lines.advance(line, tokens, "tokens")

    def training(self, label: str) -> Callable[[int, dict, object], None]:
        task = self.progress.add_task(label, total=self.recipe.total_steps, stats="")
        line = self.lines.add(f"{label} (steps)", self.recipe.total_steps) if self.lines else None

        def on_step(step: int, record: dict, result) -> None:
            rate = result.run_tokens / result.seconds if result.seconds else 0.0
            stats = f"loss {record['loss']:.3f}  ce {record['ce']:.3f}  kd {record['kd']:.3f}  {rate:,.0f} tok/s"
            self.progress.update(task, completed=step, stats=stats)
            if line is not None:
                self.lines.update(line, step, stats)

        return on_step
