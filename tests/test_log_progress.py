"""Long commands say how far they are when stderr is a log (features.log_progress)."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from features.log_progress import LogProgress


def test_a_log_gets_a_line_per_interval_and_one_at_the_end() -> None:
    now = [0.0]
    buffer = io.StringIO()
    progress = LogProgress(Console(file=buffer, width=20), every_seconds=15.0, clock=lambda: now[0])
    with progress:
        task = progress.add_task("building snapshots (partitions)", total=None)
        for second, completed in ((5, 1), (16, 2), (20, 3), (40, 10), (41, 10)):
            now[0] = float(second)
            # t=5 too soon after t=0; t=16 is 15 s on; t=20 too soon; t=40 finished;
            # t=41 nothing new.
            progress.update(task, completed=completed, total=10)
    lines = buffer.getvalue().splitlines()
    # Independent of the console's 20 columns: one unfolded line per report.
    assert lines == [
        "[     0s] building snapshots (partitions): 0",
        "[    16s] building snapshots (partitions): 2/10",
        "[    40s] building snapshots (partitions): 10/10",
    ]


def test_training_steps_in_a_log_are_not_folded_or_read_as_markup(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from training import cli

    buffer = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=buffer, width=40))
    message = "churn: tuning skipped (the inner validation folds hold [61, 59] positive labels)"
    with cli._progress() as say:
        say(message)
    (line,) = buffer.getvalue().splitlines()
    assert line.endswith("s] " + message)
