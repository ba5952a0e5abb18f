"""The breed's progress display: one bar per phase, and a training bar with loss, tokens/s and ETA."""

from __future__ import annotations

from typing import Callable

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from .recipe import CMGRecipe


class BreedProgress:
    def __init__(self, enabled: bool, recipe: CMGRecipe):
        self.recipe = recipe
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[stats]}"), TimeRemainingColumn(),
            disable=not enabled,
        )

    def __enter__(self) -> "BreedProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def phase(self, label: str, total_tokens: int) -> Callable[[int], None]:
        """A bar counting tokens; returns the callback that advances it."""
        task = self.progress.add_task(label, total=total_tokens, stats="tokens")
        return lambda tokens: self.progress.advance(task, tokens)

    def training(self, label: str) -> Callable[[int, dict, object], None]:
        task = self.progress.add_task(label, total=self.recipe.total_steps, stats="")

        def on_step(step: int, record: dict, result) -> None:
            rate = result.run_tokens / result.seconds if result.seconds else 0.0
            stats = f"loss {record['loss']:.3f}  ce {record['ce']:.3f}  kd {record['kd']:.3f}  {rate:,.0f} tok/s"
            self.progress.update(task, completed=step, stats=stats)

        return on_step
