"""A factory of small, valid contract tables (every table, every column) and writers.

`valid_frames()` is a tiny company of two accounts that passes validation with no error;
tests break one thing at a time. The writers store the same frames as a Parquet folder,
a CSV folder or a DuckDB file.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from features.event_map import EventMap, dump_event_map

TS = pd.Timestamp
EXTRACTED = TS("2024-06-01")
NOW = TS("2030-01-01")
EVENT_MAP = EventMap(
    core_features=("open", "edit"),
    advanced_features=("sync",),
    admin_events=("configure",),
    invite_events=("invite",),
    gate_events=("gate",),
    metered_events=("sync",),
    workspace_events=("new_space",),
)


def _ts(*values: str | None) -> pd.Series:
    return pd.Series([TS(v) if v else None for v in values], dtype="datetime64[us]")


def _str(*values: str | None) -> pd.Series:
    return pd.Series(list(values), dtype="string")


def valid_frames() -> dict[str, pd.DataFrame]:
    """Every contract table with every column, two accounts, no problem at all."""
    return {
        "accounts": pd.DataFrame(
            {
                "account_id": _str("a", "b"),
                "name": _str("Acme", "Beta"),
                "created_at": _ts("2023-01-01", "2023-06-01"),
                "segment": _str("SMB", "Enterprise"),
                "industry": _str("Tech", None),
                "icp_fit": _str("High", "Low"),
                "acquisition_channel": _str("outbound", "inbound"),
                "csm_owner": _str("kim", None),
            }
        ),
        "subscriptions": pd.DataFrame(
            {
                "account_id": _str("a", "a", "b"),
                "start_at": _ts("2023-01-01", "2024-01-01", "2023-06-01"),
                "end_at": _ts("2024-01-01", None, None),
                "plan": _str("Starter", "Pro", "Pro"),
                "arr": pd.Series([1200.0, 2400.0, 5000.0]),
                "seats": pd.Series([5, 10, 20], dtype="Int64"),
                "usage_limit": pd.Series([1000.0, 5000.0, None]),
                "modules": _str(None, "sso;api", "api"),
                "renewal_at": _ts("2024-01-01", "2025-01-01", None),
            }
        ),
        "users": pd.DataFrame(
            {
                "account_id": _str("a", "a", "b"),
                "user_id": _str("u1", "u2", "u3"),
                "role": _str("admin", "member", "admin"),
                "is_champion": pd.Series([True, False, False], dtype="boolean"),
                "is_executive": pd.Series([False, False, True], dtype="boolean"),
                "created_at": _ts("2023-01-02", "2023-02-01", "2023-06-02"),
                "deactivated_at": _ts(None, "2024-03-01", None),
            }
        ),
        "events": pd.DataFrame(
            {
                "account_id": _str("a", "a", "a", "b", "b", "b", "b"),
                "user_id": _str("u1", "u1", "u2", "u3", "u3", "u3", "u3"),
                "occurred_at": _ts(
                    "2024-05-01 10:00",
                    "2024-05-02",
                    "2024-02-01",
                    "2024-05-03",
                    "2024-05-04",
                    "2024-05-05",
                    "2024-05-06",
                ),
                "event": _str("open", "sync", "edit", "configure", "invite", "gate", "new_space"),
                "quantity": pd.Series([1.0, 250.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
            }
        ),
        "integrations": pd.DataFrame(
            {
                "account_id": _str("a", "b"),
                "integration": _str("crm", "slack"),
                "connected_at": _ts("2023-02-01", "2023-07-01"),
                "disconnected_at": _ts(None, "2024-01-01"),
            }
        ),
        "tickets": pd.DataFrame(
            {
                "account_id": _str("a", "b"),
                "ticket_id": _str("t1", "t2"),
                "created_at": _ts("2024-04-01", "2024-05-01"),
                "priority": _str("high", "low"),
                "text": _str("terrible, broken, furious", "love it, great support, thanks"),
                "sentiment": pd.Series([-0.8, 0.7]),
                "resolved_at": _ts("2024-04-02", None),
            }
        ),
        "nps_responses": pd.DataFrame(
            {
                "account_id": _str("a", "b"),
                "user_id": _str("u1", "u3"),
                "responded_at": _ts("2024-03-01", "2024-03-02"),
                "score": pd.Series([9, 3], dtype="Int64"),
                "comment": _str("great", None),
            }
        ),
        "invoices": pd.DataFrame(
            {
                "account_id": _str("a", "b", "b"),
                "invoice_id": _str("i1", "i2", "i3"),
                "due_at": _ts("2024-01-15", "2024-02-01", "2024-07-01"),
                "amount": pd.Series([2400.0, 5000.0, 5000.0]),
                "paid_at": _ts("2024-01-10", None, None),
                "status": _str("paid", "failed", "open"),
            }
        ),
        "interventions": pd.DataFrame(
            {
                "account_id": _str("b"),
                "play": _str("executive escalation"),
                "started_at": _ts("2024-04-15"),
                "owner": _str("kim"),
                "notes": _str(None),
            }
        ),
    }


def write_parquet(folder: Path, frames: dict[str, pd.DataFrame], *, event_map: bool = True) -> Path:
    """The frames as TABLE.parquet files (plus event_map.yaml unless told not to)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_parquet(folder / f"{name}.parquet", index=False)
    if event_map:
        (folder / "event_map.yaml").write_text(dump_event_map(EVENT_MAP))
    return folder


def write_csv(folder: Path, frames: dict[str, pd.DataFrame], *, event_map: bool = True) -> Path:
    """The frames as TABLE.csv files with ISO-8601 timestamps."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False, date_format="%Y-%m-%dT%H:%M:%S")
    if event_map:
        (folder / "event_map.yaml").write_text(dump_event_map(EVENT_MAP))
    return folder


def write_duckdb(path: Path, frames: dict[str, pd.DataFrame], *, event_map: bool = True) -> Path:
    """The frames as tables of a DuckDB database file (event_map.yaml beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    try:
        for name, frame in frames.items():
            con.register("_frame", frame)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM _frame")
            con.unregister("_frame")
    finally:
        con.close()
    if event_map:
        (path.parent / "event_map.yaml").write_text(dump_event_map(EVENT_MAP))
    return path
