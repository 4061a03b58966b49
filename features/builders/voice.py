"""Voice family: the account's NPS answers (absent without an nps_responses table).

Decisions: answers are ordered by `responded_at`; when several people answered at the
same latest moment their scores are averaged (deterministic, no arbitrary pick).
`nps_change` = latest minus the previous answer moment (NaN with a single one);
`nps_detractor` = latest < 7; `days_since_nps` counts from the latest answer.
`nps_lifetime` is the mean of every answer before as_of, each answer counting once:
an account's lasting opinion, which one latest answer reads noisily. All NaN when
the account never answered before as_of.
"""

from __future__ import annotations

import pandas as pd

from features.builders.context import BuildContext
from features.sql import days_between


def build(ctx: BuildContext) -> pd.DataFrame:
    """nps_latest, nps_change, nps_detractor, days_since_nps, nps_lifetime per spine row."""
    if not ctx.source.has("nps_responses"):
        return ctx.sql(f"SELECT account_id, as_of FROM {ctx.spine}")
    return ctx.sql(f"""
        WITH ranked AS (
            SELECT s.account_id, s.as_of, r.responded_at, r.score,
                DENSE_RANK() OVER (
                    PARTITION BY s.account_id, s.as_of ORDER BY r.responded_at DESC
                ) AS k
            FROM {ctx.spine} s
            JOIN nps_responses r
              ON r.account_id = s.account_id AND r.responded_at < s.as_of
        ),
        moments AS (
            SELECT account_id, as_of,
                AVG(CASE WHEN k = 1 THEN CAST(score AS DOUBLE) END) AS latest,
                AVG(CASE WHEN k = 2 THEN CAST(score AS DOUBLE) END) AS previous,
                MAX(CASE WHEN k = 1 THEN responded_at END) AS latest_at,
                AVG(CAST(score AS DOUBLE)) AS lifetime
            FROM ranked GROUP BY account_id, as_of
        )
        SELECT s.account_id, s.as_of, m.latest AS nps_latest,
            m.latest - m.previous AS nps_change,
            CASE WHEN m.latest < 7 THEN 1.0 WHEN m.latest >= 7 THEN 0.0 END AS nps_detractor,
            {days_between("s.as_of", "m.latest_at")} AS days_since_nps,
            m.lifetime AS nps_lifetime
        FROM {ctx.spine} s
        LEFT JOIN moments m ON m.account_id = s.account_id AND m.as_of = s.as_of
    """)
