"""Population stability index (PSI) of snapshot features against a model's training data.

The reference (bin edges and shares of the training rows) is fitted once at training time
and travels with the model as plain JSON, so drift can be checked later without the
training data. Missing values get a bin of their own: a feature that suddenly stops being
reported is drift too.

Seasonality is not drift. The reference holds the shares of the latest training months
(recent: a growing company's whole history differs from any recent month) and the bins and
shares of each calendar month of the training year before them (`seasonal`). A
snapshot is compared with both and a feature's PSI is the smaller of the two: it is drift
only when the snapshot looks neither like the recent training months nor like the same
calendar month a year earlier. A usage rebound after the summer lull that the history shows
every year then reads stable, while a real shift (moved away from both) is still flagged.
Measured on a simulated seasonal company (docs/DOMAIN.md, "Drift").
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# The file name of the reference inside a registered model's artefacts (beside model.json).
REFERENCE_FILE = "drift_reference.json"
# Conventional PSI reading: below 0.1 stable, 0.1-0.2 moderate shift, above 0.2 significant.
DEFAULT_THRESHOLDS = (0.1, 0.2)
# Floor for an empty bin's share, so one empty bin does not make PSI infinite.
_EPSILON = 1e-4

# "untrained": every training row lacked the feature (e.g. a year-over-year feature on a
# company with a year of history), so the model learned nothing from it and its values
# arriving later are no shift in anything the model relies on.
Status = Literal["stable", "moderate", "significant", "untrained"]


@dataclass(frozen=True)
class FeatureReference:
    """Bins of one feature and the share of training rows in each."""

    name: str
    kind: Literal["numeric", "category"]
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    shares: tuple[float, ...] = ()


@dataclass(frozen=True)
class DriftReference:
    """The training population of every model feature, as bins and shares."""

    features: tuple[FeatureReference, ...]
    rows: int
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
    meta: Mapping[str, Any] = field(default_factory=dict)
    # Calendar month (1-12) -> bins and shares of every feature on the training rows of that
    # month in the year before the latest training date. Empty: recent only.
    seasonal: Mapping[int, tuple[FeatureReference, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able form stored beside the model."""
        return {
            "rows": self.rows,
            "thresholds": list(self.thresholds),
            "meta": dict(self.meta),
            "seasonal": {
                str(month): [_feature_dict(f) for f in refs]
                for month, refs in sorted(self.seasonal.items())
            },
            "features": [_feature_dict(f) for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftReference:
        """Inverse of `to_dict`; a malformed document raises ValueError naming the key."""
        try:
            features = tuple(_feature_from_dict(f) for f in data["features"])
            low, high = (float(t) for t in data["thresholds"])
            seasonal = {
                int(month): tuple(_feature_from_dict(f) for f in refs)
                for month, refs in dict(data.get("seasonal") or {}).items()
            }
            meta = dict(data.get("meta", {}))
            return cls(features, int(data["rows"]), (low, high), meta, seasonal)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"drift reference is malformed: {exc!r}") from exc


def fit_reference(
    frame: pd.DataFrame,
    features: Iterable[str],
    *,
    bins: int = 10,
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
) -> DriftReference:
    """Quantile bins (numeric) or levels (category) of each feature on the training rows."""
    if frame.empty:
        raise ValueError("cannot fit a drift reference on an empty frame")
    refs = []
    for name in features:
        if name not in frame.columns:
            raise KeyError(f"feature {name!r} is not a column of the training frame")
        refs.append(_fit_one(frame[name], name, bins))
    return DriftReference(tuple(refs), len(frame), thresholds)


def _feature_dict(f: FeatureReference) -> dict[str, Any]:
    return {
        "name": f.name,
        "kind": f.kind,
        "edges": list(f.edges),
        "levels": list(f.levels),
        "shares": list(f.shares),
    }


def _feature_from_dict(f: Mapping[str, Any]) -> FeatureReference:
    return FeatureReference(
        name=str(f["name"]),
        kind=f["kind"],
        edges=tuple(float(e) for e in f["edges"]),
        levels=tuple(str(v) for v in f["levels"]),
        shares=tuple(float(s) for s in f["shares"]),
    )


def with_seasonal(
    reference: DriftReference, frame: pd.DataFrame, *, bins: int = 10
) -> DriftReference:
    """`reference` plus bins and shares of each calendar month of `frame` (by its `as_of`).

    `frame` is the training rows of the year before the latest training date: one snapshot
    date per calendar month with monthly snapshots. Months with no rows are left out (a
    company with less history gets recent-only comparisons for them).
    """
    if frame.empty or "as_of" not in frame.columns:
        return reference
    months = pd.to_datetime(frame["as_of"]).dt.month
    seasonal: dict[int, tuple[FeatureReference, ...]] = {}
    for month in sorted(months.unique()):
        rows = frame.loc[months == month]
        seasonal[int(month)] = tuple(
            _fit_one(rows[f.name], f.name, bins) for f in reference.features
        )
    return replace(reference, seasonal=seasonal)


def _is_categorical(values: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values))


def _fit_one(values: pd.Series, name: str, bins: int) -> FeatureReference:
    if _is_categorical(values):
        levels = tuple(sorted(values.dropna().astype(str).unique()))
        ref = FeatureReference(name, "category", levels=levels)
    else:
        numbers = values.astype("float64").dropna().to_numpy()
        quantiles = np.quantile(numbers, np.linspace(0, 1, bins + 1)[1:-1]) if numbers.size else []
        ref = FeatureReference(name, "numeric", edges=tuple(np.unique(quantiles).tolist()))
    return FeatureReference(
        ref.name, ref.kind, ref.edges, ref.levels, tuple(_shares(values, ref).tolist())
    )


def _shares(values: pd.Series, ref: FeatureReference) -> np.ndarray:
    """Share of rows per bin; the last bin holds missing values (and unseen levels)."""
    if ref.kind == "category":
        codes = pd.Categorical(values.astype("string"), categories=list(ref.levels)).codes
        index = np.where(codes < 0, len(ref.levels), codes)
        n_bins = len(ref.levels) + 1
    else:
        numbers = values.astype("float64").to_numpy()
        index = np.searchsorted(np.asarray(ref.edges), numbers, side="right")
        index = np.where(np.isnan(numbers), len(ref.edges) + 1, index)
        n_bins = len(ref.edges) + 2
    counts = np.bincount(index, minlength=n_bins).astype("float64")
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index between two share vectors over the same bins."""
    e = np.clip(expected, _EPSILON, None)
    a = np.clip(actual, _EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def population_stability(reference: DriftReference, frame: pd.DataFrame) -> pd.DataFrame:
    """PSI per reference feature on `frame`, most shifted first, with a status per feature.

    A feature missing from `frame` counts as entirely missing, which is how an export that
    lost a table looks to the model. When the reference holds the shares of the calendar
    month of `frame`'s latest `as_of`, a feature's PSI is the smaller of its PSI against the
    recent training months and against that month a year earlier (seasonality is not drift).
    """
    if frame.empty:
        raise ValueError("cannot compute drift on an empty frame")
    low, high = reference.thresholds
    same_month = _same_month(reference, frame)
    rows = []
    for ref in reference.features:
        values = frame[ref.name] if ref.name in frame.columns else pd.Series([None] * len(frame))
        score = psi(np.asarray(ref.shares), _shares(values, ref))
        if ref.name in same_month:
            month_ref = same_month[ref.name]
            score = min(score, psi(np.asarray(month_ref.shares), _shares(values, month_ref)))
        status: Status = "stable" if score < low else "moderate" if score < high else "significant"
        if ref.shares and ref.shares[-1] >= 1.0 - 1e-12:
            status = "untrained"
        rows.append({"feature": ref.name, "psi": score, "status": status})
    table = pd.DataFrame(rows, columns=["feature", "psi", "status"])
    return table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)


def _same_month(reference: DriftReference, frame: pd.DataFrame) -> dict[str, FeatureReference]:
    """The reference's bins of the calendar month of `frame`'s latest as_of, by feature."""
    if not reference.seasonal or "as_of" not in frame.columns:
        return {}
    latest = pd.to_datetime(frame["as_of"]).max()
    if pd.isna(latest):
        return {}
    return {f.name: f for f in reference.seasonal.get(int(latest.month), ())}


def summarise(table: pd.DataFrame) -> dict[str, Any]:
    """Small JSON summary of a drift table, as /readyz shows it."""
    counts = table["status"].value_counts()
    untrained = [str(f) for f in table.loc[table["status"] == "untrained", "feature"]]
    table = table[table["status"] != "untrained"]
    worst = table.head(5)
    return {
        "features": len(table),
        "significant": int(counts.get("significant", 0)),
        "moderate": int(counts.get("moderate", 0)),
        "worst": [
            {"feature": str(r.feature), "psi": round(float(r.psi), 4), "status": str(r.status)}
            for r in worst.itertuples()
        ],
        "max_psi": round(float(table["psi"].max()), 4) if len(table) else 0.0,
        "significant_features": [
            str(f) for f in table.loc[table["status"] == "significant", "feature"]
        ],
        "moderate_features": [str(f) for f in table.loc[table["status"] == "moderate", "feature"]],
        "untrained_features": untrained,
    }


def find_reference(folder: Path) -> DriftReference | None:
    """The drift reference stored anywhere under a downloaded model folder, or None.

    Models registered before references existed have none; an unreadable file is logged and
    treated the same way, so a damaged sidecar never stops a model from serving.
    """
    for path in sorted(folder.rglob(REFERENCE_FILE)):
        try:
            return DriftReference.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable drift reference %s: %s", path, exc)
    return None
