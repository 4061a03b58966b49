"""Usage family: active users, activity days, action volume and its trend.

Decisions: an "action" is one event row (any event name; quantity is ignored here);
an active user is a user with at least one event in the window. Trends are relative
changes (now - before) / before, NaN when the earlier window had no actions/users.
`days_since_last_activity` counts from the start of the last UTC day with an event; an
account that never acted before as_of counts from its `created_at` instead (NaN if that
is not before as_of either), so a silent new account is not mistaken for an unknown one.
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext
from features.sql import days_between, rel_change


def build(ctx: BuildContext) -> pd.DataFrame:
    """wau, mau, active_users_90d, stickiness, activity and trend features per spine row."""
    windows = _window_counts(ctx)
    last = _days_since_last_activity(ctx)
    return windows.merge(last, on=["account_id", "as_of"], how="left", validate="1:1")


def _window_counts(ctx: BuildContext) -> pd.DataFrame:
    def users(column: str) -> str:
        return f"COUNT(CASE WHEN {column} > 0 THEN user_id END)"

    days = ctx.windowed(ctx.account_day, columns="d.day", days=30)
    return ctx.sql(f"""
        WITH agg AS (
            SELECT account_id, as_of,
                {users("n_7d")} AS wau, {users("n_30d")} AS mau,
                {users("n_30_60d")} AS mau_before, {users("n_90d")} AS active_users_90d,
                SUM(n_30d) AS events_30d, SUM(n_30_60d) AS events_before_30d,
                SUM(n_14d) AS events_14d, SUM(n_14_28d) AS events_before_14d
            FROM {ctx.user_window} GROUP BY account_id, as_of
        ),
        active_days AS (
            -- account_day holds one row per active day
            SELECT account_id, as_of, COUNT(*) AS active_days_30d
            FROM ({days}) d GROUP BY account_id, as_of
        ),
        full_rows AS (
            SELECT s.account_id, s.as_of,
                COALESCE(a.wau, 0) AS wau, COALESCE(a.mau, 0) AS mau,
                COALESCE(a.mau_before, 0) AS mau_before,
                COALESCE(a.active_users_90d, 0) AS active_users_90d,
                COALESCE(d.active_days_30d, 0) AS active_days_30d,
                COALESCE(a.events_30d, 0) AS events_30d,
                COALESCE(a.events_before_30d, 0) AS events_before_30d,
                COALESCE(a.events_14d, 0) AS events_14d,
                COALESCE(a.events_before_14d, 0) AS events_before_14d
            FROM {ctx.spine} s
            LEFT JOIN agg a ON a.account_id = s.account_id AND a.as_of = s.as_of
            LEFT JOIN active_days d ON d.account_id = s.account_id AND d.as_of = s.as_of
        )
        SELECT account_id, as_of, wau, mau, active_users_90d,
            CAST(wau AS DOUBLE) / NULLIF(mau, 0) AS stickiness,
            active_days_30d, events_30d,
            CAST(events_30d AS DOUBLE) / NULLIF(mau, 0) AS events_per_active_user_30d,
            {rel_change("events_30d", "events_before_30d")} AS usage_trend_30d,
            {rel_change("events_14d", "events_before_14d")} AS usage_trend_14d,
            {rel_change("mau", "mau_before")} AS active_users_trend_30d
        FROM full_rows
    """)


def _days_since_last_activity(ctx: BuildContext) -> pd.DataFrame:
    # One ordered stream per account of active days and snapshot dates; a running max
    # over it finds the last active day strictly before each as_of (a day equal to
    # as_of sorts after the snapshot row), without joining each snapshot to all history.
    return ctx.sql(f"""
        WITH stream AS (
            SELECT account_id, day AS t, 0 AS is_snapshot FROM {ctx.account_day}
            UNION ALL
            SELECT account_id, as_of AS t, 1 AS is_snapshot FROM {ctx.spine}
        ),
        running AS (
            SELECT account_id, t, is_snapshot,
                MAX(CASE WHEN is_snapshot = 0 THEN t END) OVER (
                    PARTITION BY account_id ORDER BY t, is_snapshot DESC
                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                ) AS last_day
            FROM stream
        )
        SELECT r.account_id, r.t AS as_of,
            COALESCE(
                {days_between("r.t", "r.last_day")},
                CASE WHEN a.created_at < r.t THEN {days_between("r.t", "a.created_at")} END
            ) AS days_since_last_activity
        FROM running r LEFT JOIN accounts a ON a.account_id = r.account_id
        WHERE r.is_snapshot = 1
    """)
