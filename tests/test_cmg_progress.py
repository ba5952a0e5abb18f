"""The breed's progress display: its own bars, plain lines off a terminal, and a caller's shared display."""

from __future__ import annotations

import io

from rich.console import Console
from rich.progress import Progress

from breedlab.cmg.progress import BreedProgress, SharedDisplay, progress_columns
from breedlab.cmg.recipe import CMGRecipe

RECIPE = CMGRecipe(domain="code", tokens=4096, batch_size=4, seq_len=64)


class _Result:
    run_tokens, seconds = 512, 2.0


def _console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=200), out


def test_off_a_terminal_a_shared_display_gets_labelled_lines_with_rate_and_eta():
    console, out = _console(terminal=False)
    with BreedProgress(True, RECIPE, display=SharedDisplay(console, None, label="code lab")) as progress:
        advance = progress.phase("1/4 profiling", 100)
        advance(100)  # a completed bar always prints
        on_step = progress.training("3/4 distilling")
        on_step(RECIPE.total_steps, {"loss": 1.0, "ce": 2.0, "kd": 0.5}, _Result())
    lines = out.getvalue().splitlines()
    assert lines[0].strip().startswith("code lab: 1/4 profiling: 100/100 (100%)")
    assert "code lab: 3/4 distilling (steps)" in lines[1] and "256 tok/s" in lines[1] and "ETA 0s" in lines[1]


def test_on_a_terminal_the_bars_go_into_the_callers_live_progress_and_leave_with_the_breed():
    console, _ = _console(terminal=True)
    with Progress(*progress_columns(), console=console) as shared:
        replay = shared.add_task("replaying traffic", total=10, stats="queries")
        with BreedProgress(True, RECIPE, display=SharedDisplay(console, shared, label="code lab")) as progress:
            progress.phase("1/4 profiling", 100)
            progress.training("3/4 distilling")
            names = [task.description for task in shared.tasks]
            assert names == ["replaying traffic", "code lab: 1/4 profiling", "code lab: 3/4 distilling"]
        assert [task.id for task in shared.tasks] == [replay]  # the shared display is still live
        assert shared.live.is_started


def test_without_a_display_a_disabled_breed_prints_nothing():
    console, out = _console(terminal=False)
    with BreedProgress(False, RECIPE, console=console) as progress:
        progress.phase("1/4 profiling", 10)(10)
    assert out.getvalue() == ""


def test_a_step_of_the_caller_is_a_labelled_line():
    console, out = _console(terminal=False)
    SharedDisplay(console, None, label="medical lab").step("4/6 fitness vectors")
    assert out.getvalue().strip() == "medical lab: 4/6 fitness vectors"
