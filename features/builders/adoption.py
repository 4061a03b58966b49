"""Adoption family: breadth and depth of feature use, seats, plan limit, workspaces.

Decisions: breadth/depth = distinct names of the role used in the window / names in the
role (event_map); `core_breadth_change_30d` is the difference of the two shares (0-1
scale). `advanced_share_30d` = advanced event rows / all event rows (NaN without any).
"Newly adopted" = a core or advanced name whose first-ever use by the account falls in the
last 30 days. The usage-limit ratio sums `quantity` of metered events over 30 days
(a month) and divides by the limit of the period at as_of; its trend is that ratio minus
the one of the 30 days before, both over the limit at as_of (NaN when the limit is
missing or 0). `metered_usage_yoy` = metered quantity of the last 30 days vs the same
30 days a year earlier, (now - then) / then (NaN when then was 0 or empty).
`workspaces` counts workspace events before as_of.
Seats: `seat_utilisation` = MAU / seats; `licence_utilisation` = users holding a licence
at as_of (created before as_of, not deactivated before it, as `users_active_licences`)
/ seats - how full the contract is, whatever those users did (NaN without seats or 0).
Absent: core/advanced/metered/workspace features when their event role is empty;
seat and limit features when the subscriptions column is absent.
"""

from __future__ import annotations

from functools import reduce

import pandas as pd

from features.builders.context import BuildContext
from features.sql import before, days_ago, period_at, ratio, rel_change

KEYS = ["account_id", "as_of"]


def build(ctx: BuildContext) -> pd.DataFrame:
    """Adoption features available for this source, one row per spine row."""
    parts = [ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")]
    if ctx.has_role("core_features") or ctx.has_role("advanced_features"):
        parts.append(_breadth(ctx))
        parts.append(_newly_adopted(ctx))
    if ctx.source.has("subscriptions", "seats"):
        parts.append(_seat_utilisation(ctx))
    if ctx.source.has("subscriptions", "usage_limit") and ctx.has_role("metered_events"):
        parts.append(_limit_ratio(ctx))
    if ctx.has_role("metered_events"):
        parts.append(_metered_yoy(ctx))
    if ctx.has_role("workspace_events"):
        parts.append(_workspaces(ctx))
    return reduce(lambda a, b: a.merge(b, on=KEYS, how="left", validate="1:1"), parts)


def _distinct_share(role: str, ctx: BuildContext, column: str) -> str:
    used = f"event IN {ctx.role_events(role)} AND {column} > 0"
    n_role = f"(SELECT COUNT(DISTINCT event) FROM {ctx.roles} WHERE role = '{role}')"
    return f"CAST(COUNT(DISTINCT CASE WHEN {used} THEN event END) AS DOUBLE) / {n_role}"


def _breadth(ctx: BuildContext) -> pd.DataFrame:
    cols: dict[str, str] = {}
    if ctx.has_role("core_features"):
        now = _distinct_share("core_features", ctx, "n_30d")
        before = _distinct_share("core_features", ctx, "n_30_60d")
        cols |= {"core_breadth_30d": now, "core_breadth_change_30d": f"{now} - {before}"}
    if ctx.has_role("advanced_features"):
        adv = f"event IN {ctx.role_events('advanced_features')}"
        cols["advanced_depth_30d"] = _distinct_share("advanced_features", ctx, "n_30d")
        cols["advanced_events_30d"] = f"SUM(CASE WHEN {adv} THEN n_30d ELSE 0 END)"
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    frame = ctx.sql(f"""
        WITH agg AS (SELECT account_id, as_of, {exprs}
                     FROM {ctx.event_window} GROUP BY account_id, as_of),
        tot AS (SELECT account_id, as_of, SUM(n_30d) AS events_30d FROM {ctx.user_window}
                GROUP BY account_id, as_of)
        SELECT s.account_id, s.as_of, {", ".join(f"a.{c}" for c in cols)}, t.events_30d
        FROM {ctx.spine} s
        LEFT JOIN agg a ON a.account_id = s.account_id AND a.as_of = s.as_of
        LEFT JOIN tot t ON t.account_id = s.account_id AND t.as_of = s.as_of
    """)
    return _fill_breadth(frame)


def _fill_breadth(frame: pd.DataFrame) -> pd.DataFrame:
    # A spine row without any role event in 60 days used 0 features: a genuine 0.
    for col in ("core_breadth_30d", "core_breadth_change_30d", "advanced_depth_30d"):
        if col in frame:
            frame[col] = frame[col].fillna(0.0)
    if "advanced_events_30d" in frame:
        adv = frame.pop("advanced_events_30d").fillna(0.0)
        total = frame["events_30d"].astype("float64")
        frame["advanced_share_30d"] = (adv / total).where(total > 0)
    return frame.drop(columns="events_30d")


def _newly_adopted(ctx: BuildContext) -> pd.DataFrame:
    roles = "('core_features', 'advanced_features')"
    return ctx.sql(f"""
        WITH firsts AS (
            SELECT account_id, event, MIN(day) AS first_day FROM {ctx.event_day}
            WHERE event IN (SELECT event FROM {ctx.roles} WHERE role IN {roles})
            GROUP BY account_id, event
        )
        SELECT s.account_id, s.as_of, COUNT(f.event) AS features_newly_adopted_30d
        FROM {ctx.spine} s
        LEFT JOIN firsts f ON f.account_id = s.account_id
            AND f.first_day >= {days_ago("s.as_of", 30)} AND f.first_day < s.as_of
        GROUP BY s.account_id, s.as_of
    """)


def _seat_utilisation(ctx: BuildContext) -> pd.DataFrame:
    gone = before("u.deactivated_at", "s.as_of")
    return ctx.sql(f"""
        WITH mau AS (SELECT account_id, as_of, COUNT(CASE WHEN n_30d > 0 THEN user_id END) AS mau
                     FROM {ctx.user_window} GROUP BY account_id, as_of),
        licensed AS (
            -- provisioned before as_of and not deactivated by then (a later exit is unknown)
            SELECT s.account_id, s.as_of, COUNT(u.user_id) AS n
            FROM {ctx.spine} s
            JOIN users u ON u.account_id = s.account_id AND u.created_at < s.as_of
            WHERE {gone} IS NULL
            GROUP BY s.account_id, s.as_of
        )
        SELECT s.account_id, s.as_of,
            {ratio("COALESCE(m.mau, 0)", "p.seats")} AS seat_utilisation,
            {ratio("COALESCE(l.n, 0)", "p.seats")} AS licence_utilisation
        FROM {ctx.spine} s
        LEFT JOIN mau m ON m.account_id = s.account_id AND m.as_of = s.as_of
        LEFT JOIN licensed l ON l.account_id = s.account_id AND l.as_of = s.as_of
        LEFT JOIN ({period_at(ctx.spine)}) p ON p.account_id = s.account_id AND p.as_of = s.as_of
    """)


def _limit_ratio(ctx: BuildContext) -> pd.DataFrame:
    metered = f"event IN {ctx.role_events('metered_events')}"
    return ctx.sql(f"""
        WITH q AS (SELECT account_id, as_of, SUM(q_30d) AS q_now, SUM(q_30_60d) AS q_before
                   FROM {ctx.event_window} WHERE {metered} GROUP BY account_id, as_of)
        SELECT s.account_id, s.as_of,
            {ratio("COALESCE(q.q_now, 0)", "p.usage_limit")} AS usage_limit_ratio_30d,
            {ratio("COALESCE(q.q_now, 0) - COALESCE(q.q_before, 0)", "p.usage_limit")}
                AS usage_limit_ratio_trend
        FROM {ctx.spine} s
        LEFT JOIN q ON q.account_id = s.account_id AND q.as_of = s.as_of
        LEFT JOIN ({period_at(ctx.spine)}) p ON p.account_id = s.account_id AND p.as_of = s.as_of
    """)


def _metered_yoy(ctx: BuildContext) -> pd.DataFrame:
    metered = f"d.event IN {ctx.role_events('metered_events')}"
    # Only the window of a year ago: [as_of - 365d, as_of - 335d), aligned with q_30d.
    rows = ctx.windowed(
        ctx.event_day,
        columns="d.qty",
        days=365,
        where=f"{metered} AND d.day < {days_ago('s.as_of', 335)}",
    )
    return ctx.sql(f"""
        WITH q AS (SELECT account_id, as_of, SUM(q_30d) AS q_now
                   FROM {ctx.event_window} WHERE event IN {ctx.role_events("metered_events")}
                   GROUP BY account_id, as_of),
        y AS (SELECT account_id, as_of, SUM(qty) AS q_then FROM ({rows}) r
              GROUP BY account_id, as_of)
        SELECT s.account_id, s.as_of,
            {rel_change("COALESCE(q.q_now, 0)", "y.q_then")} AS metered_usage_yoy
        FROM {ctx.spine} s
        LEFT JOIN q ON q.account_id = s.account_id AND q.as_of = s.as_of
        LEFT JOIN y ON y.account_id = s.account_id AND y.as_of = s.as_of
    """)


def _workspaces(ctx: BuildContext) -> pd.DataFrame:
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, COALESCE(SUM(d.n), 0) AS workspaces
        FROM {ctx.spine} s
        LEFT JOIN {ctx.event_day} d ON d.account_id = s.account_id AND d.day < s.as_of
            AND d.event IN {ctx.role_events("workspace_events")}
        GROUP BY s.account_id, s.as_of
    """)
