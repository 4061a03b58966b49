"""Gates family: hits on features above the plan (absent when `gate_events` is empty).

Decision: a hit is one event row of a `gate_events` name (quantity ignored).
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext


def build(ctx: BuildContext) -> pd.DataFrame:
    """gate_hits_7d and gate_hits_30d per spine row."""
    if not ctx.has_role("gate_events"):
        return ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    gate = f"event IN {ctx.role_events('gate_events')}"
    return ctx.sql(f"""
        WITH hits AS (
            SELECT account_id, as_of, SUM(n_7d) AS h7, SUM(n_30d) AS h30
            FROM {ctx.event_window} WHERE {gate} GROUP BY account_id, as_of
        )
        SELECT s.account_id, s.as_of,
            COALESCE(h.h7, 0) AS gate_hits_7d, COALESCE(h.h30, 0) AS gate_hits_30d
        FROM {ctx.spine} s
        LEFT JOIN hits h ON h.account_id = s.account_id AND h.as_of = s.as_of
    """)
