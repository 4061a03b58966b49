"""How large expansions and contractions are: log ratio new/old ARR, learned from history.

Per kind (expansion, contraction) the model keeps the pooled distribution of the log ratio,
one per segment and one per (segment, plan), each shrunk toward its parent (plan toward
segment toward pooled toward a weak prior) with empirical-Bayes weights. Groups with fewer
than `min_count` events are not kept and fall back to their parent. Besides the observed
mean and sd, each entry stores the (mu, sigma) of the normal that, truncated to the right
sign as `models.revenue.forecast` draws it, reproduces that mean and sd.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.special import log_ndtr

from models.revenue.nrr import UNKNOWN, Freq, account_flows, arr_timeline, period_boundaries

Kind = Literal["expansion", "contraction"]
KINDS: tuple[Kind, Kind] = ("expansion", "contraction")
# weak prior: +22% / -20% ARR, used in full only when a data set has no such events at all
DEFAULT_PRIOR: Mapping[Kind, tuple[float, float]] = {
    "expansion": (0.2, 0.15),
    "contraction": (-0.22, 0.15),
}


def arr_change_events(
    subscriptions: pd.DataFrame,
    accounts: pd.DataFrame,
    *,
    data_end: pd.Timestamp,
    freq: Freq = "quarter",
    start: pd.Timestamp | None = None,
    grace_days: int = 30,
) -> pd.DataFrame:
    """ARR changes short of churn, per account and complete period (quarter by default).

    Compares ARR at the period start with ARR at its end, as the forecast horizon does.
    Columns: account_id, period_start, arr_before, arr_after, kind, log_ratio, segment, plan
    (plan at the period start).
    """
    columns = ["account_id", "period_start", "arr_before", "arr_after", "kind", "log_ratio"]
    timeline = arr_timeline(subscriptions, data_end=data_end, grace_days=grace_days)
    if timeline.empty:
        return pd.DataFrame(columns=[*columns, "segment", "plan"])
    first = start if start is not None else timeline["start_at"].min()
    bounds = period_boundaries(freq=freq, first=first, last=data_end)
    if len(bounds) < 2:
        return pd.DataFrame(columns=[*columns, "segment", "plan"])
    flows = account_flows(timeline, boundaries=bounds)
    changed = flows[
        (flows["arr_start"] > 0)
        & (flows["churned_arr"] == 0)
        & (flows["arr_end"] != flows["arr_start"])
    ]
    out = pd.DataFrame(
        {
            "account_id": changed["account_id"],
            "period_start": changed["period_start"],
            "arr_before": changed["arr_start"],
            "arr_after": changed["arr_end"],
            "kind": np.where(changed["arr_end"] > changed["arr_start"], "expansion", "contraction"),
            "log_ratio": np.log(changed["arr_end"] / changed["arr_start"]),
            "plan": changed["plan"],
        }
    )
    if "segment" in accounts.columns:
        seg = accounts.loc[:, ["account_id", "segment"]].drop_duplicates("account_id")
        seg = seg.astype({"account_id": "string", "segment": "string"})
        out = out.merge(seg, on="account_id", how="left")
    else:
        out["segment"] = pd.NA
    out["segment"] = out["segment"].astype("string").fillna(UNKNOWN)
    out["kind"] = out["kind"].astype("string")
    out = out.sort_values(["period_start", "account_id"], kind="stable")
    return out.loc[:, [*columns, "segment", "plan"]].reset_index(drop=True)


@dataclass(frozen=True)
class LogRatioStats:
    """Shrunk moments of one group's log ratios and the truncated-normal parameters."""

    n: int
    mean: float
    sd: float
    mu: float
    sigma: float

    def to_dict(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean, "sd": self.sd, "mu": self.mu, "sigma": self.sigma}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogRatioStats:
        return cls(int(data["n"]), *(float(data[k]) for k in ("mean", "sd", "mu", "sigma")))


def _mills(r: float) -> float:
    """phi(r) / Phi(r), computed in logs so it stays finite far in the lower tail."""
    return float(np.exp(-0.5 * r * r - 0.5 * np.log(2 * np.pi) - log_ndtr(r)))


def _truncated_cv(r: float) -> float:
    """Coefficient of variation of N(r, 1) truncated to x > 0."""
    h = _mills(r)
    return float(np.sqrt(max(1.0 - r * h - h * h, 0.0)) / (r + h))


def truncated_normal_params(mean: float, sd: float, *, sign: float) -> tuple[float, float]:
    """(mu, sigma) of the normal whose truncation to sign * x > 0 has this mean and sd."""
    m = sign * mean
    if m <= 0:
        raise ValueError(f"mean log ratio {mean} has the wrong sign for this kind")
    if sd <= 0:
        return mean, 0.0
    cv = sd / m
    lo, hi = -6.0, 20.0
    if cv <= _truncated_cv(hi):
        return mean, sd  # truncation is negligible this far from zero
    # the truncated normal's CV is at most 1 (its exponential limit): cap extreme spreads
    r = lo if cv >= _truncated_cv(lo) else brentq(lambda x: _truncated_cv(x) - cv, lo, hi)
    sigma = m / (r + _mills(r))
    return sign * r * sigma, sigma


def _moments(values: np.ndarray) -> tuple[int, float, float]:
    n = int(values.size)
    mean = float(values.mean()) if n else 0.0
    var = float(values.var(ddof=1)) if n > 1 else 0.0
    return n, mean, var


def _prior_strength(children: list[tuple[int, float, float]], parent_var: float) -> float:
    """Pseudo-count k = within variance / between variance (method of moments), 1..1000."""
    if len(children) < 2 or parent_var <= 0:
        return 10.0
    means = np.array([m for _, m, _ in children])
    noise = np.mean([v / n for n, _, v in children])
    between = float(means.var(ddof=1)) - float(noise)
    return float(np.clip(parent_var / between, 1.0, 1000.0)) if between > 0 else 1000.0


def _shrink(
    n: int, mean: float, var: float, parent: tuple[float, float], k: float
) -> tuple[float, float]:
    pm, pv = parent
    shrunk_mean = (n * mean + k * pm) / (n + k)
    shrunk_var = (max(n - 1, 0) * var + k * pv) / (max(n - 1, 0) + k)
    return shrunk_mean, shrunk_var


def _stats(n: int, mean: float, var: float, sign: float) -> LogRatioStats:
    sd = float(np.sqrt(var))
    mu, sigma = truncated_normal_params(mean, sd, sign=sign)
    return LogRatioStats(n, mean, sd, float(mu), float(sigma))


@dataclass(frozen=True)
class KindModel:
    """Amount distributions of one kind: pooled, per segment, per (segment, plan)."""

    pooled: LogRatioStats
    by_segment: Mapping[str, LogRatioStats]
    by_segment_plan: Mapping[tuple[str, str], LogRatioStats]

    def lookup(self, segment: str | None, plan: str | None) -> LogRatioStats:
        """The most specific stats with enough history: (segment, plan), segment, pooled."""
        if segment is not None and plan is not None and (segment, plan) in self.by_segment_plan:
            return self.by_segment_plan[(segment, plan)]
        if segment is not None and segment in self.by_segment:
            return self.by_segment[segment]
        return self.pooled

    def to_dict(self) -> dict[str, Any]:
        return {
            "pooled": self.pooled.to_dict(),
            "by_segment": {k: v.to_dict() for k, v in self.by_segment.items()},
            "by_segment_plan": [
                {"segment": s, "plan": p, **v.to_dict()}
                for (s, p), v in self.by_segment_plan.items()
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KindModel:
        return cls(
            pooled=LogRatioStats.from_dict(data["pooled"]),
            by_segment={k: LogRatioStats.from_dict(v) for k, v in data["by_segment"].items()},
            by_segment_plan={
                (str(r["segment"]), str(r["plan"])): LogRatioStats.from_dict(r)
                for r in data["by_segment_plan"]
            },
        )


def _fit_level(
    groups: Mapping[Any, np.ndarray],
    parents: Mapping[Any, tuple[float, float]],
    *,
    min_count: int,
    sign: float,
) -> dict[Any, LogRatioStats]:
    """Shrink each group with enough events toward its parent's (mean, var)."""
    kept = {g: _moments(v) for g, v in groups.items() if v.size >= min_count}
    out: dict[Any, LogRatioStats] = {}
    for key, (n, mean, var) in kept.items():
        parent_key = key[0] if isinstance(key, tuple) else None
        parent = parents[parent_key]
        siblings = [
            s for g, s in kept.items() if (g[0] if isinstance(g, tuple) else None) == parent_key
        ]
        k = _prior_strength(siblings, parent[1])
        out[key] = _stats(n, *_shrink(n, mean, var, parent, k), sign)
    return out


def _fit_kind(events: pd.DataFrame, kind: Kind, *, min_count: int) -> KindModel:
    sign = 1.0 if kind == "expansion" else -1.0
    part = events[events["kind"] == kind]
    values = part["log_ratio"].to_numpy(dtype=float)
    if (sign * values <= 0).any():
        raise ValueError(f"{kind} events must have log_ratio of sign {sign:+.0f}")
    prior_mean, prior_sd = DEFAULT_PRIOR[kind]
    n, mean, var = _moments(values)
    # the weak prior counts as min_count events: negligible once there is real history
    pooled_mean, pooled_var = _shrink(n, mean, var, (prior_mean, prior_sd**2), float(min_count))
    pooled = _stats(n, pooled_mean, pooled_var, sign)
    seg_groups = {str(s): g.to_numpy(float) for s, g in part.groupby("segment")["log_ratio"]}
    by_segment = _fit_level(
        seg_groups, {None: (pooled.mean, pooled.sd**2)}, min_count=min_count, sign=sign
    )
    parents: dict[Any, tuple[float, float]] = {
        s: (by_segment[s].mean, by_segment[s].sd ** 2)
        if s in by_segment
        else (pooled.mean, pooled.sd**2)
        for s in seg_groups
    }
    sp_groups = {
        (str(s), str(p)): g.to_numpy(float)
        for (s, p), g in part.groupby(["segment", "plan"])["log_ratio"]
    }
    by_plan = _fit_level(sp_groups, parents, min_count=min_count, sign=sign)
    return KindModel(pooled, by_segment, by_plan)


@dataclass(frozen=True)
class AmountModel:
    """Expansion and contraction size distributions, JSON-serialisable."""

    expansion: KindModel
    contraction: KindModel
    min_count: int

    def predict_params(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Per row: expand_mu, expand_sigma, contract_mu, contract_sigma for the forecast.

        Uses `segment` and `plan` columns when present (most specific level with enough
        history wins); rows or columns without them get the pooled parameters.
        """
        segment = _labels(frame, "segment")
        plan = _labels(frame, "plan")
        out = pd.DataFrame(index=frame.index)
        for prefix, model in (("expand", self.expansion), ("contract", self.contraction)):
            stats = [model.lookup(s, p) for s, p in zip(segment, plan, strict=True)]
            out[f"{prefix}_mu"] = np.array([st.mu for st in stats], dtype=float)
            out[f"{prefix}_sigma"] = np.array([st.sigma for st in stats], dtype=float)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_count": self.min_count,
            "expansion": self.expansion.to_dict(),
            "contraction": self.contraction.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AmountModel:
        unknown = set(data) - {"min_count", "expansion", "contraction"}
        if unknown:
            raise ValueError(f"unknown AmountModel key(s) {sorted(unknown)}")
        return cls(
            expansion=KindModel.from_dict(data["expansion"]),
            contraction=KindModel.from_dict(data["contraction"]),
            min_count=int(data["min_count"]),
        )


def _labels(frame: pd.DataFrame, column: str) -> list[str | None]:
    if column not in frame.columns:
        return [None] * len(frame)
    values = frame[column].astype("string")
    return [None if pd.isna(v) else str(v) for v in values]


def fit_amount_model(events: pd.DataFrame, *, min_count: int = 5) -> AmountModel:
    """Learn amount distributions from `arr_change_events` output (kind, log_ratio, ...)."""
    missing = [c for c in ("kind", "log_ratio", "segment", "plan") if c not in events.columns]
    if missing:
        raise ValueError(f"events is missing column(s) {missing}")
    if min_count < 2:
        raise ValueError(f"min_count must be >= 2, got {min_count}")
    bad_kind = set(events["kind"].dropna().unique()) - set(KINDS)
    if bad_kind or events["kind"].isna().any():
        raise ValueError(f"events.kind must be 'expansion' or 'contraction', got {bad_kind}")
    if not np.isfinite(events["log_ratio"].to_numpy(dtype=float)).all():
        raise ValueError("events.log_ratio must be finite")
    clean = events.assign(
        segment=events["segment"].astype("string").fillna(UNKNOWN),
        plan=events["plan"].astype("string").fillna(UNKNOWN),
    )
    return AmountModel(
        expansion=_fit_kind(clean, "expansion", min_count=min_count),
        contraction=_fit_kind(clean, "contraction", min_count=min_count),
        min_count=min_count,
    )
