"""Forward-looking labels per spine row, a function of the subscriptions table only.

Definitions (docs/DATA_CONTRACT.md, "Snapshots and labels"), over paid periods
(`arr > 0`; a zero-ARR period is no revenue, so moving onto one is churn):
- churn date: the `end_at` of a paid period after which no paid period of the account
  starts within `grace_days` (a start at most grace_days after the end continues it: the
  grace rule of `features.sql.continues_sql`, shared with the features and the NRR maths);
  `churned` = a churn date in [as_of, as_of + horizon), `churn_at` = the first of them.
- an ARR change: a paid period that continues the previous one (starts at most
  grace_days after it ended) at a different ARR; a reactivation after churn is none.
  `expanded` / `expansion_arr`: rises starting in the window and the sum of the rises;
  `contracted` / `contraction_arr`: falls to a positive ARR and the sum of the falls
  (a positive amount).
- `labelled` = as_of + horizon <= data_end; unlabelled rows carry null labels.
A churn observed near data_end is taken at face value: a continuation that would start
after data_end (but within the grace window) cannot be seen.
"""

from __future__ import annotations

import uuid

import pandas as pd

from features.config import SnapshotConfig
from features.registry import KEY_COLUMNS, LABEL_COLUMNS
from features.source import DataSource
from features.spine import check_spine
from features.sql import churn_dates, revenue_changes


def build_labels(
    *, source: DataSource, spine: pd.DataFrame, config: SnapshotConfig
) -> pd.DataFrame:
    """account_id, as_of and LABEL_COLUMNS for every spine row, in spine order."""
    spine = check_spine(spine)
    name = f"_nrr_label_spine_{uuid.uuid4().hex[:8]}"
    source.engine.register(name, spine)
    try:
        raw = source.sql(_label_query(name, config))
    finally:
        source.engine.unregister(name)
    raw = spine.merge(_normalise_keys(raw), on=list(KEY_COLUMNS), how="left", validate="1:1")
    horizon = pd.Timedelta(days=config.horizon_days)
    labelled = (raw["as_of"] + horizon <= source.data_end).to_numpy(dtype=bool)
    return _finish(raw, labelled)


def _label_query(spine: str, config: SnapshotConfig) -> str:
    horizon = f"{int(config.horizon_days)} * INTERVAL '1' DAY"

    def window(ts: str) -> str:
        return f"{ts} >= s.as_of AND {ts} < s.as_of + {horizon}"

    return f"""
        WITH churns AS (
            SELECT s.account_id, s.as_of, MIN(c.churn_at) AS churn_at
            FROM {spine} s
            JOIN ({churn_dates(config.grace_days)}) c
              ON c.account_id = s.account_id AND {window("c.churn_at")}
            GROUP BY s.account_id, s.as_of
        ),
        moves AS (
            SELECT s.account_id, s.as_of,
                SUM(CASE WHEN m.delta > 0 THEN m.delta ELSE 0 END) AS expansion_arr,
                SUM(CASE WHEN m.delta < 0 THEN -m.delta ELSE 0 END) AS contraction_arr
            FROM {spine} s
            JOIN ({revenue_changes(config.grace_days)}) m
              ON m.account_id = s.account_id AND {window("m.start_at")}
            GROUP BY s.account_id, s.as_of
        )
        SELECT s.account_id, s.as_of, c.churn_at,
            CAST(COALESCE(m.expansion_arr, 0) AS DOUBLE) AS expansion_arr,
            CAST(COALESCE(m.contraction_arr, 0) AS DOUBLE) AS contraction_arr
        FROM {spine} s
        LEFT JOIN churns c ON c.account_id = s.account_id AND c.as_of = s.as_of
        LEFT JOIN moves m ON m.account_id = s.account_id AND m.as_of = s.as_of
    """


def _normalise_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        account_id=frame["account_id"].astype("string"),
        as_of=pd.to_datetime(frame["as_of"]).astype("datetime64[us]"),
    )


def _finish(raw: pd.DataFrame, labelled: pd.Series | object) -> pd.DataFrame:
    mask = pd.Series(labelled, index=raw.index, dtype=bool)
    churn_at = pd.to_datetime(raw["churn_at"]).astype("datetime64[us]")
    expansion = raw["expansion_arr"].astype("float64")
    contraction = raw["contraction_arr"].astype("float64")

    def known(values: pd.Series, dtype: str) -> pd.Series:
        return values.astype(dtype).where(mask)

    out = pd.DataFrame(
        {
            "account_id": raw["account_id"],
            "as_of": raw["as_of"],
            "labelled": mask,
            "churned": known(churn_at.notna(), "boolean"),
            "churn_at": churn_at.where(mask),
            "expanded": known(expansion > 0, "boolean"),
            "expansion_arr": known(expansion, "float64"),
            "contracted": known(contraction > 0, "boolean"),
            "contraction_arr": known(contraction, "float64"),
        }
    )
    return out[[*KEY_COLUMNS, *LABEL_COLUMNS]]


def labels_known_at(
    snapshots: pd.DataFrame, *, at: pd.Timestamp, horizon_days: int
) -> pd.DataFrame:
    """Labelled snapshot rows whose label window had closed by `at` (as_of + horizon <= at):
    what a model or a check used at `at` may learn from, sorted by as_of and account."""
    closed = pd.to_datetime(snapshots["as_of"]) + pd.Timedelta(days=horizon_days) <= at
    labelled = snapshots["labelled"].astype("boolean").fillna(False).astype(bool)
    return snapshots.loc[closed & labelled].sort_values(["as_of", "account_id"], kind="stable")
