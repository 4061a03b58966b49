"""Portable SQL fragments shared by the spine, label and feature builders.

Only ANSI-style forms: `ts - INTERVAL 'n' DAY`, `n * INTERVAL '1' DAY`,
`EXTRACT(EPOCH FROM interval)`, CASE, window functions. Window bounds are half-open
`[as_of - start, as_of - end)`, so "the last 30 days" never includes as_of itself.

The grace rule (when a later paid period continues an earlier one) lives here once, as a SQL
predicate for the labels and features and as the same comparison on pandas values for the
NRR maths (`models.revenue.nrr`).
"""

from __future__ import annotations

import operator
from typing import Any

import pandas as pd


def days_ago(as_of: str, days: int) -> str:
    """`as_of` minus a whole number of days."""
    if days == 0:
        return as_of
    return f"({as_of} - INTERVAL '{int(days)}' DAY)"


def in_window(ts: str, as_of: str, start: int, end: int = 0) -> str:
    """`ts` lies in [as_of - start days, as_of - end days)."""
    return f"({ts} >= {days_ago(as_of, start)} AND {ts} < {days_ago(as_of, end)})"


def days_between(later: str, earlier: str) -> str:
    """Fractional days from `earlier` to `later` (negative when later < earlier)."""
    return f"(EXTRACT(EPOCH FROM ({later} - {earlier})) / 86400.0)"


def before(ts: str, as_of: str) -> str:
    """A current-state timestamp seen at as_of: NULL unless strictly before as_of."""
    # Values at or after as_of had not happened yet: the state was still open then.
    return f"(CASE WHEN {ts} < {as_of} THEN {ts} END)"


def ratio(num: str, den: str) -> str:
    """num / den as DOUBLE, NULL when the denominator is zero or NULL."""
    return f"(CAST({num} AS DOUBLE) / NULLIF(CAST({den} AS DOUBLE), 0))"


def rel_change(now: str, then: str) -> str:
    """Relative change (now - then) / then, NULL when `then` is zero."""
    return f"(CAST(({now}) - ({then}) AS DOUBLE) / NULLIF(CAST({then} AS DOUBLE), 0))"


def flag(condition: str) -> str:
    """1.0 when the condition holds, else 0.0 (a NULL condition counts as false)."""
    return f"(CASE WHEN {condition} THEN 1.0 ELSE 0.0 END)"


def period_at(spine: str) -> str:
    """Spine rows with the subscription period whose start_at is the latest before as_of."""
    # Terms "at as_of" come from the period in force by its start; its end_at is ignored
    # because an end at or after as_of was not known yet.
    return f"""
        SELECT account_id, as_of, start_at, arr, plan, seats, usage_limit, modules, renewal_at
        FROM (
            SELECT s.account_id, s.as_of, p.start_at, p.arr, p.plan, p.seats,
                p.usage_limit, p.modules, p.renewal_at,
                ROW_NUMBER() OVER (
                    PARTITION BY s.account_id, s.as_of ORDER BY p.start_at DESC
                ) AS rn
            FROM {spine} s
            JOIN subscriptions p ON p.account_id = s.account_id AND p.start_at < s.as_of
        ) t
        WHERE rn = 1
    """


def paid_periods() -> str:
    """Subscription periods with ARR > 0 and their neighbours (by start) among those."""
    # A zero-ARR period is no revenue: moving onto one ends the paid relationship.
    return """
        SELECT account_id, start_at, end_at, arr,
            LAG(end_at) OVER w AS prev_end,
            LAG(arr) OVER w AS prev_arr,
            LEAD(start_at) OVER w AS next_start
        FROM subscriptions
        WHERE arr > 0
        WINDOW w AS (PARTITION BY account_id ORDER BY start_at)
    """


# The grace rule, the one definition of "continues" for labels, features and the NRR maths:
# a paid period that starts at most `grace_days` after the previous one ended continues it
# (a renewal after a short lapse); a later start is churn, then a new relationship. The
# boundary is stated once, here, and both the SQL and the pandas predicates are built from it.
GRACE_CONTINUES = "<="
_CONTINUES_OP = {"<=": operator.le, "<": operator.lt}[GRACE_CONTINUES]


def grace_deadline(end: Any, grace_days: int) -> Any:
    """The latest start that still continues a period ending at `end` (pandas/numpy values)."""
    return end + pd.Timedelta(days=int(grace_days))


def continues(start: Any, prev_end: Any, grace_days: int) -> Any:
    """Whether a period starting at `start` continues one ending at `prev_end` (pandas/numpy).

    Element-wise over Series or arrays; a NaT on either side compares false (no continuation).
    """
    return _CONTINUES_OP(start, grace_deadline(prev_end, grace_days))


def continues_sql(start: str, prev_end: str, grace_days: int) -> str:
    """`continues` as a SQL predicate over timestamp expressions (NULL when one side is)."""
    return f"({start} {GRACE_CONTINUES} {prev_end} + {int(grace_days)} * INTERVAL '1' DAY)"


def revenue_changes(grace_days: int) -> str:
    """account_id, start_at, delta: ARR changes between continuing paid periods."""
    # A reactivation (a start after the grace window) is a new relationship, not a change.
    return f"""
        SELECT account_id, start_at, arr - prev_arr AS delta
        FROM ({paid_periods()}) p
        WHERE prev_end IS NOT NULL
          AND {continues_sql("start_at", "prev_end", grace_days)}
          AND arr <> prev_arr
    """


def churn_dates(grace_days: int) -> str:
    """account_id, churn_at: ends of paid periods that no paid period continues."""
    return f"""
        SELECT account_id, end_at AS churn_at
        FROM ({paid_periods()}) p
        WHERE end_at IS NOT NULL
          AND (next_start IS NULL OR NOT {continues_sql("next_start", "end_at", grace_days)})
    """
