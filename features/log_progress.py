"""Progress of a long command whose stderr is a log, not a terminal.

rich's bars draw nothing there, so a 20-minute snapshot build or simulation would say
nothing until it ended. This stands in for `rich.progress.Progress` (the calls the CLI
makes) and prints one timestamped line per task at most every `every_seconds`, and once
when the task completes. `log_line` is that line, also used by `nrr train`'s step log.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console
from rich.progress import TaskID


@dataclass
class _Task:
    description: str
    total: float | None
    said_at: float
    said: float


class LogProgress:
    def __init__(
        self,
        console: Console,
        *,
        every_seconds: float = 15.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._console = console
        self._every = every_seconds
        self._clock = clock
        self._started = clock()
        self._tasks: list[_Task] = []

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        self._tasks.append(_Task(description, total, said_at=0.0, said=0.0))
        self._say(self._tasks[-1], 0.0)
        return TaskID(len(self._tasks) - 1)

    def update(
        self, task: TaskID, *, completed: float | None = None, total: float | None = None
    ) -> None:
        state = self._tasks[task]
        if total is not None:
            state.total = total
        if completed is None or completed == state.said:
            return
        finished = state.total is not None and completed >= state.total
        if finished or self._clock() - state.said_at >= self._every:
            self._say(state, completed)

    def _say(self, state: _Task, completed: float) -> None:
        state.said_at, state.said = self._clock(), completed
        count = f"{completed:,.0f}" + (f"/{state.total:,.0f}" if state.total else "")
        log_line(self._console, state.said_at - self._started, f"{state.description}: {count}")


def log_line(console: Console, seconds: float, message: str) -> None:
    """'[   42s] message' as one line: never folded at the console's width (a log has no
    width), never read as rich markup (a message may hold '[61, 59]')."""
    console.print(f"[{seconds:6.0f}s] {message}", soft_wrap=True, markup=False, highlight=False)
