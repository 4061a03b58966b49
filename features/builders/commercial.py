"""Commercial family: contract terms at as_of, ARR history, billing health, account facts.

Decisions:
- Terms (arr, plan, seats, modules, renewal) come from the period with the latest
  `start_at < as_of`; its end_at is ignored. `modules_count` counts `;`-separated names
  (NULL or blank = 0). `days_to_renewal` = renewal_at - as_of in days (negative when the
  committed term already ended without a new period). Month-to-month periods (NULL
  renewal_at) have no committed renewal and get NULL: a "next monthly renewal" of 0-30
  days would drag every monthly account's health score down and fire the renewal
  signals for all of them; `billing_term` = monthly tells the models instead.
- `billing_term`: `monthly` when renewal_at is NULL; otherwise the term runs from the
  first period before as_of carrying the same renewal_at to renewal_at, and is
  `multi_year` when longer than 400 days (a year plus slack), else `annual`.
- `tenure_days` counts from accounts.created_at (NaN if that is not before as_of).
- `arr_change_{90,180}d` = (arr at as_of - arr in force d days earlier) / the latter,
  where "in force at t" means start_at <= t and not ended by t (an end_at at or after
  as_of counts as open); NaN when there was no paid period then.
- `expansions_365d` / `contractions_365d` count ARR rises / falls (to a positive ARR)
  between continuing paid periods (the label definition, grace window included) that
  started in the last 365 days.
- Invoices, from timestamps only (`status` is today's state; only `void` is used, and
  void invoices never count): overdue at as_of = due_at < as_of and not paid before
  as_of; `days_overdue_max` = days past due of the oldest of them (0 when none).
  `invoices_failed_90d`: the `failed` status means "never paid", which at as_of looks
  exactly like unpaid-overdue, so it is defined from timestamps: invoices due in the
  last 90 days not paid within 7 days of due_at (or still unpaid at as_of).
- `segment`, `industry`, `icp_fit` and `has_owner` are today's account attributes (the
  contract keeps no history of them).
"""

from __future__ import annotations

from functools import reduce

import pandas as pd

from features.builders.context import BuildContext
from features.sql import (
    before,
    days_ago,
    days_between,
    flag,
    period_at,
    rel_change,
    revenue_changes,
)

KEYS = ["account_id", "as_of"]
MULTI_YEAR_DAYS = 400
LATE_PAYMENT_DAYS = 7


def build(ctx: BuildContext) -> pd.DataFrame:
    """Commercial features available for this source, one row per spine row."""
    parts = [_terms(ctx), _arr_history(ctx), _account(ctx)]
    if ctx.source.has("invoices"):
        parts.append(_invoices(ctx))
    return reduce(lambda a, b: a.merge(b, on=KEYS, how="left", validate="1:1"), parts)


def _terms(ctx: BuildContext) -> pd.DataFrame:
    has = ctx.source.has
    cols = {"arr": "CAST(p.arr AS DOUBLE)", "plan": "p.plan"}
    if has("subscriptions", "seats"):
        cols["seats"] = "CAST(p.seats AS DOUBLE)"
    if has("subscriptions", "modules"):
        mods = "TRIM(BOTH ';' FROM TRIM(COALESCE(p.modules, '')))"
        cols["modules_count"] = (
            f"CASE WHEN {mods} = '' THEN 0 "
            f"ELSE LENGTH({mods}) - LENGTH(REPLACE({mods}, ';', '')) + 1 END"
        )
    if has("subscriptions", "renewal_at"):
        cols["days_to_renewal"] = days_between("p.renewal_at", "s.as_of")
        term_days = days_between("p.renewal_at", "term.term_start")
        cols["billing_term"] = (
            f"CASE WHEN p.start_at IS NULL THEN NULL WHEN p.renewal_at IS NULL THEN 'monthly' "
            f"WHEN {term_days} > {MULTI_YEAR_DAYS} THEN 'multi_year' ELSE 'annual' END"
        )
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    return ctx.sql(f"""
        WITH p AS ({period_at(ctx.spine)}),
        term AS (
            SELECT p.account_id, p.as_of, MIN(q.start_at) AS term_start
            FROM p JOIN subscriptions q ON q.account_id = p.account_id
                AND q.start_at < p.as_of AND q.renewal_at = p.renewal_at
            GROUP BY p.account_id, p.as_of
        )
        SELECT s.account_id, s.as_of, {exprs}
        FROM {ctx.spine} s
        LEFT JOIN p ON p.account_id = s.account_id AND p.as_of = s.as_of
        LEFT JOIN term ON term.account_id = s.account_id AND term.as_of = s.as_of
    """)


def _arr_in_force(ctx: BuildContext, days: int) -> str:
    t = days_ago("s.as_of", days)
    ended = before("q.end_at", "s.as_of")
    return f"""(SELECT SUM(q.arr) FROM subscriptions q WHERE q.account_id = s.account_id
                AND q.start_at <= {t} AND ({ended} IS NULL OR {ended} > {t}))"""


def _arr_history(ctx: BuildContext) -> pd.DataFrame:
    changes = revenue_changes(ctx.config.grace_days)
    year = f"c.start_at >= {days_ago('s.as_of', 365)} AND c.start_at < s.as_of"
    return ctx.sql(f"""
        WITH p AS ({period_at(ctx.spine)}),
        moves AS (
            SELECT s.account_id, s.as_of,
                COUNT(CASE WHEN c.delta > 0 THEN 1 END) AS expansions_365d,
                COUNT(CASE WHEN c.delta < 0 THEN 1 END) AS contractions_365d
            FROM {ctx.spine} s
            LEFT JOIN ({changes}) c ON c.account_id = s.account_id AND {year}
            GROUP BY s.account_id, s.as_of
        )
        SELECT s.account_id, s.as_of,
            {rel_change("p.arr", _arr_in_force(ctx, 90))} AS arr_change_90d,
            {rel_change("p.arr", _arr_in_force(ctx, 180))} AS arr_change_180d,
            m.expansions_365d, m.contractions_365d
        FROM {ctx.spine} s
        LEFT JOIN p ON p.account_id = s.account_id AND p.as_of = s.as_of
        LEFT JOIN moves m ON m.account_id = s.account_id AND m.as_of = s.as_of
    """)


def _account(ctx: BuildContext) -> pd.DataFrame:
    cols = {
        "tenure_days": f"CASE WHEN a.created_at < s.as_of THEN {days_between('s.as_of', 'a.created_at')} END",
        "segment": "a.segment",
    }
    if ctx.source.has("accounts", "industry"):
        cols["industry"] = "a.industry"
    if ctx.source.has("accounts", "icp_fit"):
        cols["icp_fit"] = "a.icp_fit"
    if ctx.source.has("accounts", "csm_owner"):
        # Today's owner: the contract keeps no ownership history.
        cols["has_owner"] = flag("a.csm_owner IS NOT NULL AND TRIM(a.csm_owner) <> ''")
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, {exprs}
        FROM {ctx.spine} s LEFT JOIN accounts a ON a.account_id = s.account_id
    """)


def _invoices(ctx: BuildContext) -> pd.DataFrame:
    paid = before("i.paid_at", "s.as_of")
    # `void` is today's status, the one status a snapshot may use: a voided invoice
    # was never owed. Any other status is ignored in favour of the timestamps.
    owed = "LOWER(TRIM(i.status)) <> 'void'"
    overdue = f"{owed} AND i.due_at < s.as_of AND {paid} IS NULL"
    late = f"{paid} IS NULL OR {paid} >= i.due_at + INTERVAL '{LATE_PAYMENT_DAYS}' DAY"
    failed = f"{owed} AND i.due_at >= {days_ago('s.as_of', 90)} AND i.due_at < s.as_of AND ({late})"
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of,
            COUNT(CASE WHEN {failed} THEN 1 END) AS invoices_failed_90d,
            COUNT(CASE WHEN {overdue} THEN 1 END) AS invoices_overdue,
            COALESCE(MAX(CASE WHEN {overdue} THEN {days_between("s.as_of", "i.due_at")} END), 0)
                AS days_overdue_max
        FROM {ctx.spine} s
        LEFT JOIN invoices i ON i.account_id = s.account_id AND i.due_at < s.as_of
        GROUP BY s.account_id, s.as_of
    """)
