"""Factories for tiny contract tables and validated in-memory data sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from features.contract import TABLES, ColumnType
from features.event_map import EventMap
from features.source import DataSource

TS = pd.Timestamp
DEFAULT_NOW = TS("2030-01-01")

# Tiny taxonomy with every role filled; names are deliberately not the demo ones.
EVENT_MAP = EventMap(
    core_features=("open", "edit", "share"),
    advanced_features=("automate", "sync"),
    admin_events=("configure",),
    invite_events=("invite",),
    gate_events=("gate",),
    metered_events=("sync",),
    workspace_events=("new_space",),
)

_SQL_TYPES: dict[ColumnType, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
    "float": "DOUBLE",
    "int": "BIGINT",
    "bool": "BOOLEAN",
}
_PANDAS_TYPES: dict[ColumnType, str] = {
    "string": "string",
    "timestamp": "datetime64[us]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
}
_DEFAULTS: dict[str, dict[str, Any]] = {
    "accounts": {"created_at": TS("2023-01-01"), "segment": "SMB"},
    "subscriptions": {"end_at": None, "plan": "Pro", "arr": 1200.0},
    "users": {"role": "member", "created_at": TS("2023-01-01"), "deactivated_at": None},
    "events": {"user_id": "u1", "event": "open"},
    "integrations": {"integration": "crm", "disconnected_at": None},
    "tickets": {},
    "nps_responses": {},
    "invoices": {"amount": 100.0, "paid_at": None, "status": "open"},
}


def table(
    name: str, rows: list[dict[str, Any]], *, columns: list[str] | None = None
) -> pd.DataFrame:
    """A contract table from row dicts: defaults filled, contract dtypes, chosen columns."""
    spec = TABLES[name]
    wanted = columns or [c.name for c in spec.columns if c.required]
    extra = {k for row in rows for k in row} - set(wanted)
    wanted = wanted + [c.name for c in spec.columns if c.name in extra]
    data = {col: [row.get(col, _DEFAULTS[name].get(col)) for row in rows] for col in wanted}
    frame = pd.DataFrame(data, columns=wanted)
    return frame.astype({c: _PANDAS_TYPES[spec.column(c).type] for c in wanted})


def make_source(
    frames: Mapping[str, pd.DataFrame],
    *,
    event_map: EventMap = EVENT_MAP,
    extracted_at: pd.Timestamp | None = None,
    now: pd.Timestamp = DEFAULT_NOW,
) -> DataSource:
    """A validated DataSource over the frames (features.load when available)."""
    try:
        from features.load import source_from_frames
    except ImportError:
        return direct_source(frames, event_map=event_map, extracted_at=extracted_at)
    return source_from_frames(frames, event_map=event_map, extracted_at=extracted_at, now=now)


def direct_source(
    frames: Mapping[str, pd.DataFrame],
    *,
    event_map: EventMap = EVENT_MAP,
    extracted_at: pd.Timestamp | None = None,
) -> DataSource:
    """A DataSource built without validation: typed views over the frames as given."""
    con = duckdb.connect()
    columns: dict[str, frozenset[str]] = {}
    for name, frame in frames.items():
        spec = TABLES[name]
        con.register(f"raw_{name}", frame)
        present = frozenset(frame.columns) & {c.name for c in spec.columns}
        columns[name] = present
        select = ", ".join(_typed_column(name, c.name, c.type, present) for c in spec.columns)
        con.execute(f"CREATE VIEW {name} AS SELECT {select} FROM raw_{name}")
    data_end = extracted_at if extracted_at is not None else _latest(frames)
    return DataSource(
        con=con,
        tables=frozenset(frames),
        columns=columns,
        event_map=event_map,
        data_end=data_end,
    )


def _typed_column(table_name: str, column: str, type_: ColumnType, present: frozenset[str]) -> str:
    sql_type = _SQL_TYPES[type_]
    if column in present:
        return f"CAST({column} AS {sql_type}) AS {column}"
    if table_name == "events" and column == "quantity":
        return "CAST(1 AS DOUBLE) AS quantity"
    return f"CAST(NULL AS {sql_type}) AS {column}"


def _latest(frames: Mapping[str, pd.DataFrame]) -> pd.Timestamp:
    stamps = [
        frame[col].max()
        for name, frame in frames.items()
        for col in TABLES[name].observed
        if col in frame and frame[col].notna().any()
    ]
    return pd.Timestamp(max(stamps))
