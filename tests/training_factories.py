"""Synthetic snapshot frames (registry column names, planted latent signal) for training tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.registry import INFO_COLUMNS, KEY_COLUMNS, LABEL_COLUMNS

HORIZON = pd.Timedelta(days=90)
SEGMENTS = ("SMB", "Mid-Market", "Enterprise")
PLANS = ("Starter", "Pro", "Business")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def make_snapshots(
    *,
    n_accounts: int = 150,
    months: int = 24,
    seed: int = 0,
    start: str = "2023-01-01",
    churn_base: float = -3.0,
    expand_base: float = -2.6,
    signal: float = 1.6,
) -> pd.DataFrame:
    """Monthly snapshots whose churn/expansion labels follow latent health / growth states."""
    rng = np.random.default_rng(seed)
    as_ofs = pd.date_range(start, periods=months, freq="MS")
    data_end = as_ofs[-1] + pd.Timedelta(days=20)
    rows: list[dict[str, object]] = []
    for i in range(n_accounts):
        rows.extend(
            _account_rows(
                rng,
                account=f"acc{i:04d}",
                as_ofs=as_ofs,
                bases=(churn_base, expand_base),
                signal=signal,
            )
        )
    frame = pd.DataFrame(rows)
    return _finish(frame, data_end=data_end)


def _account_rows(
    rng: np.random.Generator,
    *,
    account: str,
    as_ofs: pd.DatetimeIndex,
    bases: tuple[float, float],
    signal: float,
) -> list[dict[str, object]]:
    segment = str(rng.choice(SEGMENTS))
    plan = str(rng.choice(PLANS))
    seats = float(rng.integers(3, 60))
    first = int(rng.integers(0, len(as_ofs) // 2))
    health = rng.normal(0, 1)
    growth = rng.normal(0, 1)
    rows: list[dict[str, object]] = []
    for m in range(first, len(as_ofs)):
        prev = health
        health = 0.8 * health + rng.normal(0, 0.6)
        growth = 0.8 * growth + rng.normal(0, 0.6)
        as_of = as_ofs[m]
        p_churn = _sigmoid(
            np.array(bases[0] - signal * health + (0.4 if plan == "Starter" else 0.0))
        )
        churned = bool(rng.random() < p_churn)
        churn_at = as_of + pd.Timedelta(days=int(rng.integers(5, 89))) if churned else pd.NaT
        expanded = (not churned) and bool(
            rng.random() < _sigmoid(np.array(bases[1] + signal * growth))
        )
        mau = float(max(0.0, seats * float(_sigmoid(np.array(health))) + rng.normal(0, 1)))
        rows.append(
            {
                "account_id": account,
                "as_of": as_of,
                "csm_owner": "ann" if segment == "Enterprise" else None,
                "renewal_at": as_of + pd.Timedelta(days=int(rng.integers(10, 365))),
                "mau": float(round(mau)),
                "usage_trend_30d": float(health - prev + rng.normal(0, 0.3)),
                "days_since_last_activity": float(max(0, rng.normal(10 - 5 * health, 3))),
                "seat_utilisation": float(mau / seats) if rng.random() > 0.05 else np.nan,
                "usage_limit_ratio_30d": float(
                    _sigmoid(np.array(growth)) * 1.2 + rng.normal(0, 0.1)
                ),
                "gate_hits_30d": float(rng.poisson(3 * _sigmoid(np.array(2 * growth)))),
                "tickets_90d": float(rng.poisson(1 + max(0.0, -health))),
                "has_champion": float(rng.random() < _sigmoid(np.array(health + 1))),
                "nps_latest": float(np.clip(7 + 2 * health + rng.normal(0, 1), 0, 10))
                if rng.random() > 0.4
                else np.nan,
                "arr": seats * 400.0,
                "seats": seats,
                "tenure_days": float((m - first) * 30 + 60),
                "plan": plan,
                "segment": segment,
                "_churned": churned,
                "_churn_at": churn_at,
                "_expanded": expanded,
            }
        )
        if churned:
            break
    return rows


def _finish(frame: pd.DataFrame, *, data_end: pd.Timestamp) -> pd.DataFrame:
    labelled = (frame["as_of"] + HORIZON) <= data_end
    churned = frame["_churned"].astype("boolean").where(labelled)
    expanded = frame["_expanded"].astype("boolean").where(labelled)
    out = pd.DataFrame(
        {
            "account_id": frame["account_id"].astype("string"),
            "as_of": frame["as_of"].astype("datetime64[us]"),
            "csm_owner": frame["csm_owner"].astype("string"),
            "renewal_at": frame["renewal_at"].astype("datetime64[us]"),
        }
    )
    features = [
        c for c in frame.columns if c not in (*KEY_COLUMNS, *INFO_COLUMNS) and not c.startswith("_")
    ]
    for name in features:
        dtype = "string" if name in ("plan", "segment") else "float64"
        out[name] = frame[name].astype(dtype)
    out["labelled"] = labelled.astype(bool)
    out["churned"] = churned
    out["churn_at"] = pd.to_datetime(frame["_churn_at"]).astype("datetime64[us]").where(labelled)
    out["expanded"] = expanded
    out["expansion_arr"] = (expanded.astype("Float64") * 1000.0).astype("float64")
    out["contracted"] = pd.Series(False, index=frame.index, dtype="boolean").where(labelled)
    out["contraction_arr"] = pd.Series(0.0, index=frame.index).where(labelled)
    assert list(out.columns[-len(LABEL_COLUMNS) :]) == list(LABEL_COLUMNS)
    return out.reset_index(drop=True)


def drop_features(frame: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """The frame without some optional feature columns (a source lacking those tables)."""
    return frame.drop(columns=list(names))
