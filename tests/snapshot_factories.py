"""Factories for tiny contract tables and validated in-memory data sources."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from features.contract import TABLES, ColumnType
from features.event_map import EventMap
from features.load import source_from_frames
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
    """A validated DataSource over the frames, through the product's own loader."""
    return source_from_frames(frames, event_map=event_map, extracted_at=extracted_at, now=now)


def subscriptions_source(
    subs: list[dict[str, object]], *, extracted_at: pd.Timestamp
) -> DataSource:
    """A source of subscription histories: one account row each, the smallest usage tables."""
    ids = sorted({str(s["account_id"]) for s in subs})
    frames = {
        "accounts": table("accounts", [{"account_id": a} for a in ids]),
        "subscriptions": table("subscriptions", subs),
        "users": table("users", [{"account_id": ids[0], "user_id": "u1"}]),
        "events": table(
            "events", [{"account_id": ids[0], "user_id": "u1", "occurred_at": TS("2024-01-02")}]
        ),
    }
    return make_source(frames, extracted_at=extracted_at)
