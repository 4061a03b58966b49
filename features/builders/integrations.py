"""Integrations family (absent when the source has no integrations table).

Decisions: an integration is connected at time t when `connected_at < t` and it was not
disconnected before t; a `disconnected_at` at or after as_of is treated as NULL (still
connected then). Distinct integration names are counted, so a reconnection of the same
integration counts once. `integrations_change_90d` = connected at as_of minus connected
at as_of - 90 days.
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext
from features.sql import before, days_ago


def build(ctx: BuildContext) -> pd.DataFrame:
    """integrations_connected and integrations_change_90d per spine row."""
    if not ctx.source.has("integrations"):
        return ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    gone = before("i.disconnected_at", "s.as_of")
    then = days_ago("s.as_of", 90)

    def connected_at(t: str) -> str:
        return (
            f"COUNT(DISTINCT CASE WHEN i.connected_at < {t} "
            f"AND ({gone} IS NULL OR {gone} >= {t}) THEN i.integration END)"
        )

    return ctx.sql(f"""
        SELECT s.account_id, s.as_of,
            {connected_at("s.as_of")} AS integrations_connected,
            {connected_at("s.as_of")} - {connected_at(then)} AS integrations_change_90d
        FROM {ctx.spine} s
        LEFT JOIN integrations i ON i.account_id = s.account_id AND i.connected_at < s.as_of
        GROUP BY s.account_id, s.as_of
    """)
