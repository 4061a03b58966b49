"""Rule-based health score 0-100: weighted, normalised signals in four categories.

Missing signals (feature absent or NaN) have their weight redistributed inside their
category, a fully missing category across categories. Bands apply to the score rounded
half up to an integer. Segment variants override weights; an unknown segment keeps the
default weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import AbsoluteNorm, Band, RulesConfig, segment_key


def numeric_column(frame: Any, name: str) -> np.ndarray:
    """A numeric/bool column as float64 (NaN for missing); all-NaN when the column is absent.

    `frame` is a snapshot DataFrame or a `models.table.Table` of the same columns.
    """
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    col = frame[name]
    if isinstance(col, np.ndarray):
        if col.dtype.kind not in "fiub":
            raise ValueError(f"column {name!r} must be numeric or boolean, got dtype {col.dtype}")
        return col.astype("float64")
    if not (pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col)):
        raise ValueError(f"column {name!r} must be numeric or boolean, got dtype {col.dtype}")
    return col.to_numpy(dtype="float64", na_value=np.nan)


def threshold_key(feature: str, quantile: float) -> str:
    """Key of a population quantile in `HealthNormaliser.thresholds`."""
    return f"{feature}@{quantile:g}"


@dataclass(frozen=True)
class HealthNormaliser:
    """Percentile anchors (value -> rank) and population quantiles fitted on training snapshots."""

    anchors: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]] = field(default_factory=dict)
    thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def fit(cls, snapshots: pd.DataFrame, *, config: RulesConfig) -> HealthNormaliser:
        """Fit anchors for every percentile signal and quantiles for every quantile rule."""
        levels = np.linspace(0.0, 1.0, config.health.percentile_anchors)
        anchors: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {}
        for name in _percentile_features(config):
            values = _observed(snapshots, name)
            if values.size:
                anchors[name] = _mid_rank_anchors(np.quantile(values, levels), levels)
        thresholds: dict[str, float] = {}
        for rule in config.rules:
            for cond in rule.conditions:
                if (
                    cond.quantile is not None
                    and (values := _observed(snapshots, cond.feature)).size
                ):
                    key = threshold_key(cond.feature, cond.quantile)
                    thresholds[key] = float(np.quantile(values, cond.quantile))
        return cls(anchors=anchors, thresholds=thresholds)

    def percentile(self, name: str, values: np.ndarray) -> np.ndarray:
        """Percentile rank (0-1) of values in the training population; NaN without anchors."""
        if name not in self.anchors:
            return np.full(values.shape, np.nan)
        xs, ranks = self.anchors[name]
        out = np.interp(values, np.asarray(xs), np.asarray(ranks))
        return np.where(np.isnan(values), np.nan, out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "anchors": {
                k: {"values": list(v), "ranks": list(r)} for k, (v, r) in self.anchors.items()
            },
            "thresholds": dict(self.thresholds),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthNormaliser:
        """Inverse of `to_dict`; raises ValueError on malformed input."""
        try:
            anchors = {
                k: (tuple(map(float, a["values"])), tuple(map(float, a["ranks"])))
                for k, a in data["anchors"].items()
            }
            thresholds = {k: float(v) for k, v in data["thresholds"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed HealthNormaliser dict: {exc!r}") from exc
        for k, (xs, rs) in anchors.items():
            if len(xs) != len(rs) or not xs or list(xs) != sorted(set(xs)):
                raise ValueError(f"HealthNormaliser anchors for {k!r} must be strictly increasing")
        return cls(anchors=anchors, thresholds=thresholds)


def _percentile_features(config: RulesConfig) -> list[str]:
    return [
        name
        for cat in config.health.categories.values()
        for name, sig in cat.signals.items()
        if not isinstance(sig.norm, AbsoluteNorm)
    ]


def _observed(frame: pd.DataFrame, name: str) -> np.ndarray:
    values = numeric_column(frame, name)
    return values[~np.isnan(values)]


def _mid_rank_anchors(
    quantiles: np.ndarray, levels: np.ndarray
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    # Ties (many zeros in a count) get the middle of their rank range, not its top.
    xs, first = np.unique(quantiles, return_index=True)
    last = np.r_[first[1:] - 1, len(levels) - 1]
    ranks = (levels[first] + levels[last]) / 2.0
    return tuple(map(float, xs)), tuple(map(float, ranks))


def band_of(scores: np.ndarray | pd.Series, bands: list[Band]) -> pd.Series:
    """Band name of each score, on the score rounded half up to an integer; NA when NaN."""
    out = band_names(scores, bands)
    return pd.Series(out, dtype="string", index=getattr(scores, "index", None))


def band_names(scores: np.ndarray | pd.Series, bands: list[Band]) -> np.ndarray:
    """`band_of` as an object array (pd.NA when NaN), without building a Series."""
    values = np.asarray(scores, dtype="float64")
    rounded = np.floor(values + 0.5)
    out = np.full(values.shape, pd.NA, dtype=object)
    for band in reversed(bands):  # lowest first, so higher bands overwrite
        out[rounded >= band.min] = band.name
    return out


@dataclass(frozen=True)
class _Layout:
    signals: list[str]
    category_of: np.ndarray  # category index of each signal
    categories: list[str]
    signal_weights: np.ndarray  # (variants + 1, signals); last row = default
    category_weights: np.ndarray  # (variants + 1, categories)
    variant_of_key: dict[str, int]


def _layout(config: RulesConfig) -> _Layout:
    cats = config.health.categories
    names = list(cats)
    signals = [s for c in cats.values() for s in c.signals]
    cat_idx = np.array([i for i, c in enumerate(cats.values()) for _ in c.signals])
    default_sw = [sig.weight for c in cats.values() for sig in c.signals.values()]
    default_cw = [c.weight for c in cats.values()]
    sw_rows, cw_rows, keys = [], [], {}
    for v, (seg, variant) in enumerate(config.health.segments.items()):
        keys.update({segment_key(a): v for a in [seg, *variant.aliases]})
        cw_rows.append(
            [variant.category_weights.get(c, w) for c, w in zip(names, default_cw, strict=True)]
        )
        sw_rows.append(
            [
                variant.signal_weights.get(names[ci], {}).get(s, w)
                for s, ci, w in zip(signals, cat_idx, default_sw, strict=True)
            ]
        )
    return _Layout(
        signals=signals,
        category_of=cat_idx,
        categories=names,
        signal_weights=np.array([*sw_rows, default_sw], dtype="float64"),
        category_weights=np.array([*cw_rows, default_cw], dtype="float64"),
        variant_of_key=keys,
    )


def _variant_index(frame: Any, layout: _Layout) -> np.ndarray:
    default = len(layout.signal_weights) - 1
    if "segment" not in frame.columns:
        return np.full(len(frame), default)
    codes, uniques = pd.factorize(frame["segment"])
    per_unique = np.array(
        [layout.variant_of_key.get(segment_key(str(u)), default) for u in uniques] + [default]
    )
    return per_unique[codes]  # code -1 (NA) picks the trailing default


def _normalised(frame: Any, config: RulesConfig, normaliser: HealthNormaliser) -> np.ndarray:
    cols = []
    for cat in config.health.categories.values():
        for name, sig in cat.signals.items():
            raw = numeric_column(frame, name)
            if isinstance(sig.norm, AbsoluteNorm):
                norm = (raw - sig.norm.bad) / (sig.norm.good - sig.norm.bad)
                cols.append(np.clip(norm, 0.0, 1.0))
            else:
                pct = normaliser.percentile(name, raw)
                cols.append(pct if sig.norm.higher_is_better else 1.0 - pct)
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def _per_category_sum(matrix: np.ndarray, layout: _Layout) -> np.ndarray:
    out = np.zeros((matrix.shape[0], len(layout.categories)))
    for c in range(len(layout.categories)):
        out[:, c] = matrix[:, layout.category_of == c].sum(axis=1)
    return out


def _row_lists(mask: np.ndarray, names: Iterable[str]) -> list[list[str]]:
    """Per row, the names whose mask is True (built once per distinct row pattern)."""
    labels = np.array(list(names), dtype=object)
    if mask.shape[0] == 0:
        return []
    patterns, inverse = _distinct_rows(mask.astype("int64"), base=2)
    lists = [labels[p.astype(bool)].tolist() for p in patterns]
    return [list(lists[i]) for i in inverse]


def score_health(
    snapshots: pd.DataFrame,
    *,
    config: RulesConfig,
    normaliser: HealthNormaliser,
    previous: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Health score, band, category sub-scores, missing signals, detractors, change and alert."""
    columns = health_columns(snapshots, config=config, normaliser=normaliser, previous=previous)
    out = pd.DataFrame(index=snapshots.index)
    for name, values in columns.items():
        out[name] = pd.array(values, dtype="string") if name == "health_band" else values
    return out


def health_columns(
    snapshots: Any,
    *,
    config: RulesConfig,
    normaliser: HealthNormaliser,
    previous: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """`score_health` as plain columns (arrays and lists) of a DataFrame or `Table`."""
    layout = _layout(config)
    norm = _normalised(snapshots, config, normaliser)
    present = ~np.isnan(norm)
    variant = _variant_index(snapshots, layout)
    sig_w = layout.signal_weights[variant] * present
    cat_w_sum = _per_category_sum(sig_w, layout)
    cat_score = _per_category_sum(sig_w * np.nan_to_num(norm), layout)
    with np.errstate(invalid="ignore", divide="ignore"):
        cat_score = np.where(cat_w_sum > 0, cat_score / cat_w_sum, np.nan)
        cat_w = layout.category_weights[variant] * (cat_w_sum > 0)
        cat_share = cat_w / cat_w.sum(axis=1, keepdims=True)
        score = 100.0 * np.nansum(cat_share * np.nan_to_num(cat_score), axis=1)
        score = np.where(cat_w.sum(axis=1) > 0, score, np.nan)
        # Each signal's share of the final score, after both redistributions.
        eff = cat_share[:, layout.category_of] * sig_w / cat_w_sum[:, layout.category_of]
    shortfall = np.nan_to_num(eff * (1.0 - np.nan_to_num(norm)))
    out: dict[str, Any] = {
        "health_score": score,
        "health_band": band_names(score, config.health.bands),
    }
    for c, name in enumerate(layout.categories):
        out[f"health_{name}"] = 100.0 * cat_score[:, c]
    out["health_missing"] = _row_lists(~present, layout.signals)
    out["health_detractors"] = _detractors(shortfall, layout.signals)
    change, alert = _change_and_alert(snapshots, score, previous=previous, config=config)
    out["health_change"] = change
    out["health_alert"] = alert
    return out


def _detractors(shortfall: np.ndarray, names: list[str], k: int = 3) -> list[list[str]]:
    if shortfall.shape[1] == 0:
        return [[] for _ in range(shortfall.shape[0])]
    order = np.argsort(-shortfall, axis=1, kind="stable")[:, :k]
    top = np.take_along_axis(shortfall, order, axis=1)
    codes = np.where(top > 1e-12, order, -1)
    if codes.shape[0] == 0:
        return []
    patterns, inverse = _distinct_rows(codes + 1, base=len(names) + 1)
    lists = [[names[j - 1] for j in p if j > 0] for p in patterns]
    return [list(lists[i]) for i in inverse]


def _distinct_rows(digits: np.ndarray, *, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Distinct rows of a small non-negative int matrix and each row's pattern index."""
    if digits.shape[1] * np.log2(base) < 62:  # one int64 key per row: a fast 1-d unique
        keys = digits @ (base ** np.arange(digits.shape[1], dtype="int64"))
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        return digits[first], inverse.ravel()
    patterns, inverse = np.unique(digits, axis=0, return_inverse=True)
    return patterns, inverse.ravel()


def _change_and_alert(
    snapshots: Any,
    score: np.ndarray,
    *,
    previous: pd.DataFrame | None,
    config: RulesConfig,
) -> tuple[np.ndarray, np.ndarray]:
    # History = earlier scores passed in + the frame's own rows, so scoring a whole
    # history at once also yields changes.
    n = len(snapshots)
    if not {"account_id", "as_of"} <= set(snapshots.columns):
        if previous is not None:
            raise ValueError("previous scores given but snapshots lack account_id / as_of")
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if previous is None and _distinct_accounts(snapshots["account_id"], n):
        # No account has an earlier row: no change, nothing to alert on (the scan agrees).
        return np.full(n, np.nan), np.zeros(n, dtype=bool)
    if not isinstance(snapshots, pd.DataFrame):
        snapshots = snapshots.to_frame()
    current = pd.DataFrame(
        {
            "account_id": snapshots["account_id"].astype("string").to_numpy(),
            "as_of": pd.to_datetime(snapshots["as_of"]).to_numpy(),
            "health_score": score,
            "pos": np.arange(n),
        }
    )
    if current.duplicated(["account_id", "as_of"]).any():
        raise ValueError("snapshots have duplicate (account_id, as_of) rows")
    history = current
    if previous is not None:
        history = pd.concat([_previous_frame(previous), current], ignore_index=True)
        history = history.drop_duplicates(["account_id", "as_of"], keep="last")
    return _scan_history(history, n, config)


def _distinct_accounts(ids: Any, n: int) -> bool:
    values = ids.to_numpy() if isinstance(ids, pd.Series) else ids
    if any(v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) for v in values):
        return False  # missing ids: let the scan decide exactly as before
    return len({str(v) for v in values}) == n


def _previous_frame(previous: pd.DataFrame) -> pd.DataFrame:
    missing = {"account_id", "as_of", "health_score"} - set(previous.columns)
    if missing:
        raise ValueError(f"previous scores lack columns {sorted(missing)}")
    return pd.DataFrame(
        {
            "account_id": previous["account_id"].astype("string").to_numpy(),
            "as_of": pd.to_datetime(previous["as_of"]).to_numpy(),
            "health_score": numeric_column(previous, "health_score"),
            "pos": -1,
        }
    )


def _scan_history(
    history: pd.DataFrame, n: int, config: RulesConfig
) -> tuple[np.ndarray, np.ndarray]:
    hist = history.sort_values(["account_id", "as_of"], kind="stable")
    group = pd.factorize(hist["account_id"])[0]
    seconds = hist["as_of"].to_numpy().astype("datetime64[s]").astype("int64")
    scores = hist["health_score"].to_numpy(dtype="float64")
    idx = np.arange(len(hist))
    same_prev = np.r_[False, group[1:] == group[:-1]]
    change = np.where(same_prev, scores - np.r_[np.nan, scores[:-1]], np.nan)
    # Window [as_of - within_days, as_of): rows of the same account in that range.
    key = group.astype("int64") * 10**11 + seconds
    window = config.health.alert.within_days * 86400
    lo = np.searchsorted(key, key - window, side="left")
    peak = np.full(len(hist), -np.inf)
    for offset in range(1, int((idx - lo).max(initial=0)) + 1):
        ok = idx - offset >= lo
        peak = np.where(ok, np.fmax(peak, scores[np.maximum(idx - offset, 0)]), peak)
    alert = (peak - scores) >= config.health.alert.drop_points
    pos = hist["pos"].to_numpy()
    mine = pos >= 0
    out_change, out_alert = np.full(n, np.nan), np.zeros(n, dtype=bool)
    out_change[pos[mine]] = change[mine]
    out_alert[pos[mine]] = alert[mine]
    return out_change, out_alert
