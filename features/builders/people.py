"""People family: licences, admins, invitations, champions, executives, stakeholders.

Decisions: a user counts from `created_at < as_of`; `deactivated_at` at or after as_of
means still active then. `role`, `is_champion` and `is_executive` have no history in the
contract, so today's values are used (they describe who a person is, not an event); a
NULL flag counts as false. An admin/champion/executive is "active" with any event in the
window. `active_stakeholders_90d` counts distinct users who are an admin, a champion or
an executive and acted in the last 90 days. Invitations and admin actions count event
rows of the `invite_events` / `admin_events` roles; those features are absent when the
role is empty, champion/executive features when their users column is absent.
`invite_rate_90d` = invitation rows / all event rows in the last 90 days (NaN without any
event). `licence_growth_365d` = relative change of the users holding a licence: at as_of
vs at as_of - 365 days (created before then, not deactivated by then); NaN when nobody
held one a year earlier.
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext
from features.sql import before, days_ago, flag, in_window, rel_change

KEYS = ["account_id", "as_of"]
IS_ADMIN = "LOWER(TRIM(u.role)) = 'admin'"
IS_CHAMPION = "COALESCE(u.is_champion, FALSE)"
IS_EXECUTIVE = "COALESCE(u.is_executive, FALSE)"


def build(ctx: BuildContext) -> pd.DataFrame:
    """People features available for this source, one row per spine row."""
    frame = _roster(ctx).merge(_activity(ctx), on=KEYS, how="left", validate="1:1")
    if ctx.has_role("admin_events") or ctx.has_role("invite_events"):
        frame = frame.merge(_role_counts(ctx), on=KEYS, how="left", validate="1:1")
    return frame


def _roster(ctx: BuildContext) -> pd.DataFrame:
    gone = before("u.deactivated_at", "s.as_of")
    cols = {
        "users_active_licences": f"COUNT(CASE WHEN {gone} IS NULL THEN u.user_id END)",
        "new_users_60d": f"COUNT(CASE WHEN {in_window('u.created_at', 's.as_of', 60)} THEN 1 END)",
        "users_deactivated_90d": f"COUNT(CASE WHEN {in_window(gone, 's.as_of', 90)} THEN 1 END)",
        "licence_growth_365d": rel_change(
            f"COUNT(CASE WHEN {gone} IS NULL THEN u.user_id END)",
            f"COUNT(CASE WHEN {_licensed_at(days_ago('s.as_of', 365))} THEN u.user_id END)",
        ),
    }
    if ctx.source.has("users", "is_champion"):
        cols["has_champion"] = flag(
            f"COUNT(CASE WHEN {IS_CHAMPION} AND {gone} IS NULL THEN 1 END) > 0"
        )
        departed = f"{IS_CHAMPION} AND {in_window(gone, 's.as_of', 90)}"
        cols["champion_departed_90d"] = flag(f"COUNT(CASE WHEN {departed} THEN 1 END) > 0")
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, {exprs}
        FROM {ctx.spine} s
        LEFT JOIN users u ON u.account_id = s.account_id AND u.created_at < s.as_of
        GROUP BY s.account_id, s.as_of
    """)


def _licensed_at(t: str) -> str:
    """The user held a licence at time t (t before as_of: both timestamps were known)."""
    return f"(u.created_at < {t} AND (u.deactivated_at IS NULL OR u.deactivated_at >= {t}))"


def _activity(ctx: BuildContext) -> pd.DataFrame:
    stakeholder = f"{IS_ADMIN} OR {IS_CHAMPION} OR {IS_EXECUTIVE}"
    cols = {
        "admins_active_30d": f"COUNT(CASE WHEN {IS_ADMIN} AND w.n_30d > 0 THEN u.user_id END)",
        "active_stakeholders_90d": f"COUNT(CASE WHEN {stakeholder} THEN u.user_id END)",
    }
    if ctx.source.has("users", "is_champion"):
        cols["champion_active_14d"] = f"MAX({flag(f'{IS_CHAMPION} AND w.n_14d > 0')})"
    if ctx.source.has("users", "is_executive"):
        cols["executive_active_30d"] = f"MAX({flag(f'{IS_EXECUTIVE} AND w.n_30d > 0')})"
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    found = ctx.sql(f"""
        SELECT w.account_id, w.as_of, {exprs}
        FROM {ctx.user_window} w
        -- a person provisioned at/after as_of was unknown then, whatever their events say
        JOIN users u ON u.user_id = w.user_id AND u.created_at < w.as_of
        GROUP BY w.account_id, w.as_of
    """)
    spine = ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    # No activity in 90 days: zero active admins/stakeholders and no active champion.
    return spine.merge(found, on=KEYS, how="left", validate="1:1").fillna(dict.fromkeys(cols, 0.0))


def _role_counts(ctx: BuildContext) -> pd.DataFrame:
    cols: dict[str, str] = {}
    if ctx.has_role("admin_events"):
        admin = f"event IN {ctx.role_events('admin_events')}"
        cols["admin_actions_30d"] = f"SUM(CASE WHEN {admin} THEN n_30d ELSE 0 END)"
    if ctx.has_role("invite_events"):
        invite = f"event IN {ctx.role_events('invite_events')}"
        cols["invites_30d"] = f"SUM(CASE WHEN {invite} THEN n_30d ELSE 0 END)"
        cols["invites_90d"] = f"SUM(CASE WHEN {invite} THEN n_90d ELSE 0 END)"
    exprs = ", ".join(f"{sql} AS {name}" for name, sql in cols.items())
    found = ctx.sql(
        f"SELECT account_id, as_of, {exprs} FROM {ctx.event_window} GROUP BY account_id, as_of"
    )
    spine = ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    frame = spine.merge(found, on=KEYS, how="left", validate="1:1").fillna(dict.fromkeys(cols, 0.0))
    if "invites_90d" in frame:
        frame = frame.merge(_all_events_90d(ctx), on=KEYS, how="left", validate="1:1")
        total = frame.pop("events_90d").astype("float64")
        # invitations per tracked action: the pull for more seats, whatever the team's size
        frame["invite_rate_90d"] = (frame["invites_90d"] / total).where(total > 0)
    return frame


def _all_events_90d(ctx: BuildContext) -> pd.DataFrame:
    return ctx.sql(f"""
        SELECT s.account_id, s.as_of, COALESCE(SUM(w.n_90d), 0) AS events_90d
        FROM {ctx.spine} s
        LEFT JOIN {ctx.user_window} w ON w.account_id = s.account_id AND w.as_of = s.as_of
        GROUP BY s.account_id, s.as_of
    """)
