"""Monotone maps from scores to probabilities (rule-score fallback; model calibrators)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.isotonic import IsotonicRegression


@dataclass(frozen=True)
class ScoreToProbability:
    """Isotonic (monotone, piecewise-linear) map from a rule score (health, PQA) to a probability."""

    thresholds: tuple[float, ...]
    probabilities: tuple[float, ...]
    decreasing: bool

    @classmethod
    def fit(cls, scores: Any, labels: Any, *, decreasing: bool) -> ScoreToProbability:
        """Fit on scores and 0/1 labels; decreasing=True when a higher score means less risk."""
        x = np.asarray(scores, dtype="float64")
        y = np.asarray(labels, dtype="float64")
        if x.shape != y.shape or x.ndim != 1:
            raise ValueError(
                f"scores and labels must be 1-d of equal length, got {x.shape}, {y.shape}"
            )
        keep = ~np.isnan(x) & ~np.isnan(y)
        if not keep.any():
            raise ValueError("no rows with both a score and a label to fit on")
        if not np.isin(y[keep], (0.0, 1.0)).all():
            raise ValueError("labels must be 0/1 (or booleans)")
        iso = IsotonicRegression(
            increasing=not decreasing, out_of_bounds="clip", y_min=0.0, y_max=1.0
        )
        iso.fit(x[keep], y[keep])
        return cls(
            thresholds=tuple(map(float, iso.X_thresholds_)),
            probabilities=tuple(map(float, iso.y_thresholds_)),
            decreasing=decreasing,
        )

    def predict(self, scores: Any) -> np.ndarray:
        """Probabilities (linear between thresholds, clipped outside); NaN for NaN scores."""
        x = np.asarray(scores, dtype="float64")
        out = np.interp(x, np.asarray(self.thresholds), np.asarray(self.probabilities))
        return np.where(np.isnan(x), np.nan, out)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "kind": "score_to_probability",
            "thresholds": list(self.thresholds),
            "probabilities": list(self.probabilities),
            "decreasing": self.decreasing,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScoreToProbability:
        """Inverse of `to_dict`; raises ValueError on malformed or non-monotone input."""
        try:
            xs = tuple(map(float, data["thresholds"]))
            ps = tuple(map(float, data["probabilities"]))
            decreasing = bool(data["decreasing"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed ScoreToProbability dict: {exc!r}") from exc
        steps = np.diff(ps) * (-1 if decreasing else 1)
        if not xs or len(xs) != len(ps) or (np.diff(xs) < 0).any() or (steps < 0).any():
            raise ValueError(
                "ScoreToProbability: thresholds must ascend and probabilities be monotone"
            )
        return cls(thresholds=xs, probabilities=ps, decreasing=decreasing)


# --- Calibrator: raw booster score -> probability (training/serving of LightGBM models) ---

CALIBRATION_METHODS = ("sigmoid", "isotonic")
# The Platt slope used when the hold-out shows no positive relation: order kept, spread tiny.
FLAT_SLOPE = 1e-3
_CALIBRATOR_EPS = 1e-6


@dataclass(frozen=True)
class Calibrator:
    """Sigmoid (Platt) or isotonic map from a raw model score to a probability, as plain JSON."""

    method: str  # one of CALIBRATION_METHODS
    params: dict[str, list[float]]

    @classmethod
    def fit(cls, raw: np.ndarray, labels: np.ndarray, *, method: str) -> Calibrator:
        """Fit on held-out raw scores and 0/1 labels."""
        x, y = _calibration_inputs(raw, labels)
        if method == "sigmoid":
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e6, max_iter=1000).fit(x.reshape(-1, 1), y)
            coef, intercept = float(lr.coef_[0, 0]), float(lr.intercept_[0])
            if coef <= 0:
                # On a small hold-out the fitted slope can come out flat or negative; taken
                # as it is, it would turn the model's ranking upside down. Keep the model's
                # order and say only what the hold-out supports: its base rate.
                rate = float(np.clip(y.mean(), _CALIBRATOR_EPS, 1.0 - _CALIBRATOR_EPS))
                coef = FLAT_SLOPE
                intercept = float(np.log(rate / (1.0 - rate)) - coef * x.mean())
            return cls("sigmoid", {"coef": [coef], "intercept": [intercept]})
        if method == "isotonic":
            knots_x, knots_y = _centred_isotonic(x, y)
            return cls("isotonic", {"x": knots_x, "y": knots_y})
        raise ValueError(f"calibration method must be 'sigmoid' or 'isotonic', got {method!r}")

    def shifted(self, log_odds: float) -> Calibrator:
        """The same map with every probability moved by `log_odds` on the logit scale.

        Same JSON layout: a sigmoid's intercept moves, an isotonic map's knot rates move
        (their order, hence the map's monotonicity, is kept).
        """
        if self.method == "sigmoid":
            intercept = self.params["intercept"][0] + log_odds
            return Calibrator(
                "sigmoid", {"coef": list(self.params["coef"]), "intercept": [intercept]}
            )
        rates = np.clip(
            np.asarray(self.params["y"], dtype=float), _CALIBRATOR_EPS, 1 - _CALIBRATOR_EPS
        )
        moved = 1.0 / (1.0 + np.exp(-(np.log(rates / (1.0 - rates)) + log_odds)))
        return Calibrator("isotonic", {"x": list(self.params["x"]), "y": [float(v) for v in moved]})

    def predict(self, raw: np.ndarray) -> np.ndarray:
        """Probability per raw score, clipped away from exactly 0 and 1."""
        x = np.asarray(raw, dtype=float)
        if self.method == "sigmoid":
            z = self.params["coef"][0] * x + self.params["intercept"][0]
            p = 1.0 / (1.0 + np.exp(-z))
        else:
            p = np.interp(x, self.params["x"], self.params["y"])
        return np.clip(p, _CALIBRATOR_EPS, 1.0 - _CALIBRATOR_EPS)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable parameters."""
        return {"method": self.method, "params": {k: list(v) for k, v in self.params.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibrator:
        """Inverse of `to_dict`, with a clear error on a malformed payload."""
        method = data.get("method")
        expected = {"sigmoid": {"coef", "intercept"}, "isotonic": {"x", "y"}}
        if method not in expected:
            raise ValueError(f"calibrator method must be 'sigmoid' or 'isotonic', got {method!r}")
        params = data.get("params") or {}
        if set(params) != expected[method]:
            raise ValueError(
                f"{method} calibrator needs params {sorted(expected[method])}, got {sorted(params)}"
            )
        return cls(method, {k: [float(v) for v in vals] for k, vals in params.items()})


def level_shift(probs: np.ndarray, rate: float, *, tol: float = 1e-10) -> float:
    """The log-odds shift d with mean(sigmoid(logit(probs) + d)) == rate (bisection).

    The mean is increasing in d, so the root is unique; `rate` is clipped off 0 and 1.
    """
    p = np.clip(np.asarray(probs, dtype=float), _CALIBRATOR_EPS, 1 - _CALIBRATOR_EPS)
    if p.size == 0:
        raise ValueError("level_shift needs at least one probability")
    target = float(np.clip(rate, _CALIBRATOR_EPS, 1 - _CALIBRATOR_EPS))
    logit = np.log(p / (1.0 - p))
    lo, hi = -30.0, 30.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if np.mean(1.0 / (1.0 + np.exp(-(logit + mid)))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def _centred_isotonic(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Knots of a centred isotonic map: each pooled block's rate at the block's mean score.

    Plain isotonic regression is a step function: every account inside a block gets the same
    probability, so a worklist sorted by probability loses the model's order there (on the demo
    the expansion model had ~150 distinct values and ranked 0.003 ROC-AUC worse than its raw
    score). Interpolating between block centres (Oron & Flournoy's centred isotonic regression)
    keeps the blocks' calibration and the raw order between the first and last centre.
    """
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    fitted = IsotonicRegression(y_min=0.0, y_max=1.0).fit_transform(xs, ys)
    # Equal scores are pooled by the fit, so a block never splits a tie and centres ascend.
    starts = np.r_[0, np.flatnonzero(np.diff(fitted) != 0) + 1]
    sizes = np.diff(np.r_[starts, xs.size])
    centres = np.add.reduceat(xs, starts) / sizes
    # A block without a positive says "fewer than one in n", not "never" (the API showed
    # 1e-6): Jeffreys' half event keeps both ends off 0 and 1, and the map stays monotone.
    half = 0.5 / (sizes + 1.0)
    rates = np.maximum.accumulate(np.clip(fitted[starts], half, 1.0 - half))
    return [float(v) for v in centres], [float(v) for v in rates]


def _calibration_inputs(raw: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(raw, dtype=float)
    y = np.asarray(labels, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(
            f"raw scores and labels must be 1-D of equal length, got {x.shape} and {y.shape}"
        )
    if not np.isfinite(x).all():
        raise ValueError("raw scores contain NaN or infinite values")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0/1")
    if y.min() == y.max():
        raise ValueError("calibration needs both positive and negative labels")
    return x, y
