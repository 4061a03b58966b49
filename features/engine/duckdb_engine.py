"""The default engine: an embedded DuckDB connection running the statements as written."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from features.engine.base import Engine, Kind

_CREATE = {"view": "VIEW", "table": "TABLE", "temp": "TEMP TABLE"}


class DuckDBEngine(Engine):
    name = "duckdb"
    errors = (duckdb.Error,)

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        super().__init__()
        self.con = con

    def _sql(self, query: str, params: dict[str, object] | None) -> pd.DataFrame:
        return self.con.execute(query, params or None).df()

    def _rows(self, query: str) -> list[tuple[Any, ...]]:
        return self.con.execute(query).fetchall()

    def _execute(self, statement: str) -> None:
        self.con.execute(statement)

    def _create(self, name: str, select: str, kind: Kind, replace: bool) -> None:
        verb = "CREATE OR REPLACE" if replace else "CREATE"
        self.con.execute(f"{verb} {_CREATE[kind]} {name} AS {select}")

    def _drop(self, name: str, kind: str) -> None:
        self.con.execute(f"DROP {'VIEW' if kind == 'view' else 'TABLE'} IF EXISTS {name}")

    def register(self, name: str, frame: pd.DataFrame) -> None:
        self.con.register(name, frame)

    def unregister(self, name: str) -> None:
        self.con.unregister(name)

    def close(self) -> None:
        self.con.close()
