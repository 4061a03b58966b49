"""The engine interface: what the feature, spine, label and validation SQL needs from a runtime.

The builders hold the one SQL definition of every feature (DuckDB dialect, portable forms
only - see features/snapshots.py). An engine runs it: it registers in-memory frames as
relations, creates views and staged tables, drops them, and runs a statement to a pandas
frame or a list of rows. DuckDB runs the statements as written; Spark translates each one
first (features/engine/translate.py). Every statement an engine runs can be recorded with
its duration (`trace`), which the statement-by-statement translation test and the Spark
benchmark read.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import pandas as pd

Kind = Literal["view", "table", "temp"]
T = TypeVar("T")


class EngineError(RuntimeError):
    """An engine cannot be used here (unknown name, missing package, no Java)."""


@dataclass(frozen=True)
class Statement:
    """One statement an engine ran: what it was for, its SQL as written, its duration."""

    op: str  # sql | rows | execute | create | drop
    sql: str  # the statement in the builders' (DuckDB) dialect
    seconds: float
    target: str | None = None  # the relation created or dropped, if any


class Engine(ABC):
    """Runs the builders' SQL; subclasses say how (see the module docstring)."""

    name: str = "engine"
    # exception types meaning "the statement or the data is bad" (reported, not a crash)
    errors: tuple[type[BaseException], ...] = ()
    # Whether the snapshot build splits accounts into partitions to bound memory (DuckDB on
    # one machine). A distributed engine spills and spreads the work itself, and every
    # partition would repeat the build's ~45 statements and their fixed cost.
    splits_builds: bool = True

    def __init__(self) -> None:
        self.trace: list[Statement] | None = None

    def record(self) -> list[Statement]:
        """Start recording every statement run from now on; the list fills as they run."""
        self.trace = []
        return self.trace

    def _timed(self, op: str, sql: str, run: Callable[[], T], target: str | None = None) -> T:
        if self.trace is None:
            return run()
        started = time.perf_counter()
        try:
            return run()
        finally:
            self.trace.append(Statement(op, sql, time.perf_counter() - started, target))

    def sql(self, query: str, params: dict[str, object] | None = None) -> pd.DataFrame:
        """The result of a query as a pandas frame."""
        return self._timed("sql", query, lambda: self._sql(query, params))

    def rows(self, query: str) -> list[tuple[Any, ...]]:
        """The result of a (small) query as a list of tuples."""
        return self._timed("rows", query, lambda: self._rows(query))

    def execute(self, statement: str) -> None:
        """Run a statement without a result."""
        self._timed("execute", statement, lambda: self._execute(statement))

    def create(self, name: str, select: str, *, kind: Kind = "temp", replace: bool = False) -> None:
        """Create `name` from a SELECT: a view, a table, or a temporary staged table."""
        self._timed("create", select, lambda: self._create(name, select, kind, replace), name)

    def drop(self, name: str, *, kind: Literal["view", "table"] = "table") -> None:
        """Drop a view or (staged) table if it exists."""
        self._timed("drop", name, lambda: self._drop(name, kind), name)

    @abstractmethod
    def _sql(self, query: str, params: dict[str, object] | None) -> pd.DataFrame: ...

    @abstractmethod
    def _rows(self, query: str) -> list[tuple[Any, ...]]: ...

    @abstractmethod
    def _execute(self, statement: str) -> None: ...

    @abstractmethod
    def _create(self, name: str, select: str, kind: Kind, replace: bool) -> None: ...

    @abstractmethod
    def _drop(self, name: str, kind: str) -> None: ...

    @abstractmethod
    def register(self, name: str, frame: pd.DataFrame) -> None:
        """Expose a pandas frame as a relation called `name`."""

    @abstractmethod
    def unregister(self, name: str) -> None:
        """Remove a relation registered with `register`."""

    @abstractmethod
    def close(self) -> None:
        """Release what the engine holds (a DuckDB connection; a Spark session is shared)."""
