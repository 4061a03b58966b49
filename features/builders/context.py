"""What every feature builder receives: the source plus the staged tables of one partition.

The snapshot engine (features/snapshots.py) stages, per account partition, these
temporary relations in the source's DuckDB connection and hands their names over:

- `spine`: account_id, as_of (the partition's snapshot keys; as_of at 00:00).
- `grid`: as_of (the distinct as_of values of the partition).
- `user_day`: account_id, user_id, day, n - events per user and UTC day, all events.
- `event_day`: account_id, event, day, n, qty - events per event name and day, only for
  names that play a role in the event map.
- `roles`: role, event - the event map as a relation.
- `account_day`: account_id, day, n - events per account and UTC day (from `user_day`).
- `user_window`: account_id, as_of, user_id and the user's event counts in the windows
  before that as_of: n_7d, n_14d, n_14_28d ([as_of-28d, as_of-14d)), n_30d, n_30_60d,
  n_90d - one row per spine row and user with an event in its last 90 days, so per-user
  features never re-join the daily rows.
- `event_window`: account_id, as_of, event and that role event's counts before as_of:
  n_7d, n_30d, n_30_60d, n_90d and metered quantity q_30d, q_30_60d (same idea).

Every staged event row is strictly before the partition's latest as_of; `windowed`
keeps only days strictly before each row's as_of (a day equal to as_of holds events at
or after as_of), and builders reading a daily table directly must filter `day < as_of`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from features.config import SnapshotConfig
from features.source import DataSource
from features.sql import days_ago


@dataclass(frozen=True)
class BuildContext:
    source: DataSource
    config: SnapshotConfig
    spine: str
    grid: str
    user_day: str
    event_day: str
    roles: str
    account_day: str
    user_window: str
    event_window: str

    def has_role(self, role: str) -> bool:
        """Whether the event map names at least one event for this role."""
        return bool(self.source.event_map.roles()[role])

    def sql(self, query: str, **params: object) -> pd.DataFrame:
        return self.source.sql(query, **params)

    def windowed(self, table: str, *, columns: str, days: int, where: str = "TRUE") -> str:
        """Rows of a daily table (alias d) joined to the spine rows whose last `days` hold them."""
        # Join through the tiny grid first: each daily row meets only the few as_of
        # values whose window covers it, instead of every snapshot of its account.
        return f"""
            SELECT s.account_id, s.as_of, {columns}
            FROM {self.grid} g
            JOIN {table} d
              ON d.day < g.as_of AND d.day >= {days_ago("g.as_of", days)}
            JOIN {self.spine} s ON s.as_of = g.as_of AND s.account_id = d.account_id
            WHERE {where}
        """

    def role_events(self, role: str) -> str:
        """A subquery listing the event names of one role."""
        return f"(SELECT event FROM {self.roles} WHERE role = '{role}')"

    def user_window_sql(self) -> str:
        """The query that stages `user_window` from `user_day` (see the module docstring)."""
        windows = {"n_7d": (7, 0), "n_14d": (14, 0), "n_14_28d": (28, 14), "n_30d": (30, 0)}
        windows["n_30_60d"] = (60, 30)
        exprs = ", ".join(f"{_sum('n', *b)} AS {name}" for name, b in windows.items())
        rows = self.windowed(self.user_day, columns="d.user_id, d.day, d.n", days=90)
        return f"""
            SELECT account_id, as_of, user_id, {exprs}, SUM(n) AS n_90d
            FROM ({rows}) w GROUP BY account_id, as_of, user_id
        """

    def event_window_sql(self) -> str:
        """The query that stages `event_window` from `event_day` (see the module docstring)."""
        windows = {"n_7d": ("n", 7, 0), "n_30d": ("n", 30, 0), "n_30_60d": ("n", 60, 30)}
        windows |= {"q_30d": ("qty", 30, 0), "q_30_60d": ("qty", 60, 30)}
        exprs = ", ".join(f"{_sum(*b)} AS {name}" for name, b in windows.items())
        rows = self.windowed(self.event_day, columns="d.event, d.day, d.n, d.qty", days=90)
        return f"""
            SELECT account_id, as_of, event, {exprs}, SUM(n) AS n_90d
            FROM ({rows}) w GROUP BY account_id, as_of, event
        """


def _sum(column: str, start: int, end: int = 0) -> str:
    """Sum of `column` over daily rows in [as_of - start, as_of - end) days."""
    upper = "" if end == 0 else f" AND day < {days_ago('as_of', end)}"
    return f"SUM(CASE WHEN day >= {days_ago('as_of', start)}{upper} THEN {column} ELSE 0 END)"
