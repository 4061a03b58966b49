"""Support family: ticket volume, its rate against the account's normal, urgency, sentiment.

Decisions: a ticket counts by its `created_at`. `ticket_rate_ratio` = tickets in the last
30 days / the account's own 30-day rate over the 180 days before them ([as_of-210d,
as_of-30d)); that base period is cut to the days after the account's `created_at`, and
the ratio is NaN with less than 30 days of base period or no ticket in it (zero rate).
`urgent_share_90d` counts priority high or urgent (case-insensitive; NULL = not urgent).
Sentiment means ignore tickets without a score and are absent when the source has
neither a `sentiment` nor a `text` column to derive it from. `resolution_hours_90d` is
the median over tickets opened in the last 90 days and resolved before as_of;
`open_tickets` counts tickets opened before as_of whose `resolved_at` is NULL or at or
after as_of (still open then).

`sentiment_lifetime` is the mean sentiment of every ticket before as_of: an account's
lasting tone, which the 90-day mean reads from a handful of tickets. Absent without a
tickets table.
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext
from features.sql import before, days_ago, days_between, in_window

BASE_DAYS = 180


def build(ctx: BuildContext) -> pd.DataFrame:
    """Support features available for this source, one row per spine row."""
    if not ctx.source.has("tickets"):
        return ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    cols = _columns(ctx)
    exprs = ",\n".join(f"{sql} AS {name}" for name, sql in cols.items())
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, {exprs}
        FROM {ctx.spine} s
        LEFT JOIN accounts a ON a.account_id = s.account_id
        LEFT JOIN tickets t ON t.account_id = s.account_id AND t.created_at < s.as_of
        GROUP BY s.account_id, s.as_of, a.created_at
    """)


def _columns(ctx: BuildContext) -> dict[str, str]:
    def count(window: str) -> str:
        return f"COUNT(CASE WHEN {window} THEN t.ticket_id END)"

    def mean_sentiment(start: int, end: int = 0) -> str:
        return f"AVG(CASE WHEN {in_window('t.created_at', 's.as_of', start, end)} THEN t.sentiment END)"

    last30, last90 = (
        in_window("t.created_at", "s.as_of", 30),
        in_window("t.created_at", "s.as_of", 90),
    )
    base_start = f"GREATEST({days_ago('s.as_of', 30 + BASE_DAYS)}, a.created_at)"
    base_days = days_between(days_ago("s.as_of", 30), base_start)
    base_count = count(f"t.created_at >= {base_start} AND t.created_at < {days_ago('s.as_of', 30)}")
    cols = {
        "tickets_30d": count(last30),
        "tickets_90d": count(last90),
        "ticket_rate_ratio": (
            f"CASE WHEN {base_days} >= 30 THEN CAST({count(last30)} AS DOUBLE) "
            f"/ NULLIF({base_count} * 30.0 / {base_days}, 0) END"
        ),
    }
    if ctx.source.has("tickets", "priority"):
        urgent = f"{last90} AND LOWER(TRIM(t.priority)) IN ('high', 'urgent')"
        cols["urgent_share_90d"] = f"CAST({count(urgent)} AS DOUBLE) / NULLIF({count(last90)}, 0)"
    if ctx.source.has("tickets", "sentiment") or ctx.source.has("tickets", "text"):
        cols["sentiment_90d"] = mean_sentiment(90)
        cols["sentiment_trend"] = f"{mean_sentiment(30)} - {mean_sentiment(90, 30)}"
        cols["sentiment_lifetime"] = "AVG(t.sentiment)"
    if ctx.source.has("tickets", "resolved_at"):
        closed = before("t.resolved_at", "s.as_of")
        hours = f"CASE WHEN {last90} THEN {days_between(closed, 't.created_at')} * 24.0 END"
        cols["resolution_hours_90d"] = (
            f"CAST(PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY {hours}) AS DOUBLE)"
        )
        cols["open_tickets"] = f"COUNT(CASE WHEN {closed} IS NULL THEN t.ticket_id END)"
    return cols
