"""Arrow schemas of the written tables and column helpers (timestamps, nullable strings)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
DAY_US = 86_400_000_000

SCHEMAS: dict[str, pa.Schema] = {
    "accounts": pa.schema(
        [
            ("account_id", pa.string()),
            ("name", pa.string()),
            ("created_at", TS),
            ("segment", pa.string()),
            ("industry", pa.string()),
            ("icp_fit", pa.string()),
            ("acquisition_channel", pa.string()),
            ("csm_owner", pa.string()),
        ]
    ),
    "subscriptions": pa.schema(
        [
            ("account_id", pa.string()),
            ("start_at", TS),
            ("end_at", TS),
            ("plan", pa.string()),
            ("arr", pa.float64()),
            ("seats", pa.int64()),
            ("usage_limit", pa.float64()),
            ("modules", pa.string()),
            ("renewal_at", TS),
        ]
    ),
    "users": pa.schema(
        [
            ("account_id", pa.string()),
            ("user_id", pa.string()),
            ("role", pa.string()),
            ("is_champion", pa.bool_()),
            ("is_executive", pa.bool_()),
            ("created_at", TS),
            ("deactivated_at", TS),
        ]
    ),
    "events": pa.schema(
        [
            ("account_id", pa.string()),
            ("user_id", pa.string()),
            ("occurred_at", TS),
            ("event", pa.string()),
            ("quantity", pa.float64()),
        ]
    ),
    "integrations": pa.schema(
        [
            ("account_id", pa.string()),
            ("integration", pa.string()),
            ("connected_at", TS),
            ("disconnected_at", TS),
        ]
    ),
    "tickets": pa.schema(
        [
            ("account_id", pa.string()),
            ("ticket_id", pa.string()),
            ("created_at", TS),
            ("priority", pa.string()),
            ("text", pa.string()),
            ("resolved_at", TS),
        ]
    ),
    "nps_responses": pa.schema(
        [
            ("account_id", pa.string()),
            ("user_id", pa.string()),
            ("responded_at", TS),
            ("score", pa.int64()),
            ("comment", pa.string()),
        ]
    ),
    "invoices": pa.schema(
        [
            ("account_id", pa.string()),
            ("invoice_id", pa.string()),
            ("due_at", TS),
            ("amount", pa.float64()),
            ("paid_at", TS),
            ("status", pa.string()),
        ]
    ),
    "oracle": pa.schema(
        [
            ("account_id", pa.string()),
            ("as_of", TS),
            ("p_churn", pa.float64()),
            ("p_expand", pa.float64()),
            ("p_contract", pa.float64()),
        ]
    ),
    # the simulator's truth about its texts (features.simulate.texts); the product never reads it
    "text_topics": pa.schema(
        [
            ("source", pa.string()),
            ("account_id", pa.string()),
            ("ticket_id", pa.string()),
            ("at", TS),
            ("topic", pa.string()),
        ]
    ),
}


@dataclass(frozen=True)
class Clock:
    """Converts simulation time (microseconds since history start) to UTC timestamps."""

    start: pd.Timestamp
    days: int

    @property
    def end_us(self) -> int:
        """The extraction moment in simulation microseconds."""
        return self.days * DAY_US

    def ts(self, rel_us: np.ndarray, valid: np.ndarray | None = None) -> pa.Array:
        base = int(self.start.value // 1000)
        values = np.asarray(rel_us, dtype=np.int64) + base
        mask = None if valid is None else ~np.asarray(valid, dtype=bool)
        return pa.array(values, type=TS, mask=mask)


def account_ids(index: np.ndarray) -> np.ndarray:
    """Stable external account ids ("ACC000042")."""
    return np.char.add("ACC", np.char.zfill(index.astype(str), 6)).astype(object)


def labels(codes: np.ndarray, names: tuple[str, ...]) -> pa.Array:
    """Category codes -> strings; code -1 becomes null."""
    lookup = np.array([*names, ""], dtype=object)
    codes = np.asarray(codes, dtype=np.int64)
    return pa.array(lookup[codes], type=pa.string(), mask=codes < 0)


def suffixed(prefix: np.ndarray, number: np.ndarray, width: int) -> np.ndarray:
    """prefix + "-" + zero-padded number, element-wise."""
    tail = np.char.zfill(np.asarray(number).astype(str), width)
    return np.char.add(np.char.add(prefix.astype(str), "-"), tail).astype(object)


def table(name: str, columns: dict[str, pa.Array | np.ndarray]) -> pa.Table:
    """A table with exactly the schema of `name`."""
    schema = SCHEMAS[name]
    arrays = [pa.array(columns[f.name], type=f.type) for f in schema]
    return pa.Table.from_arrays(arrays, schema=schema)
