"""A validated data source: typed views over the contract tables, in the engine that runs them.

Downstream code (feature builders, labels, NRR analytics) only ever sees a
`DataSource`, and one only exists for data that passed validation
(`features.load.load_source` / `features.load.source_from_frames`).

Typed views, one per present table, are named as in the contract (`accounts`,
`subscriptions`, `users`, `events`, ...). Every contract column is present in the
view with its contract type - an absent optional column appears as NULL and is
listed as absent in `columns` so builders can drop the features that need it.
Timestamps are naive TIMESTAMP in UTC. `events.quantity` defaults to 1;
`tickets.sentiment` is filled from the ticket text (VADER) when the column is absent.
The views live in the source's engine (features/engine): an embedded DuckDB connection
by default, or a Spark session; `con` is the DuckDB connection of a DuckDB source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import duckdb
import pandas as pd

from features.engine import DuckDBEngine, Engine, EngineError
from features.event_map import EventMap


@dataclass(frozen=True)
class DataSource:
    engine: Engine
    # tables present in the source (required ones always are)
    tables: frozenset[str]
    # per present table: the contract columns that were present in the input
    columns: Mapping[str, frozenset[str]]
    event_map: EventMap
    # last moment the data describes: the declared extraction time, else the latest
    # observed timestamp; label windows reaching past it are left unlabelled
    data_end: pd.Timestamp
    # where it came from, for reports and data fingerprints
    origin: str = "<frames>"

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The DuckDB connection holding the views (DuckDB sources only)."""
        if not isinstance(self.engine, DuckDBEngine):
            raise EngineError(f"this step needs the duckdb engine, not {self.engine.name}")
        return self.engine.con

    def has(self, table: str, column: str | None = None) -> bool:
        if table not in self.tables:
            return False
        return column is None or column in self.columns[table]

    def sql(self, query: str, **params: object) -> pd.DataFrame:
        """Run a query (named $parameters: DuckDB only) and return a pandas frame."""
        return self.engine.sql(query, params or None)
