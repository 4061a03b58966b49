"""Churn probabilities for revenue sums: calibrated by account, re-checked by ARR.

The churn model is calibrated account by account: on the latest labelled dates its mean
probability matches the churn rate. The forecast sums probability x ARR, so what it needs is
calibration weighted by ARR, and that failed on every simulated company measured: large
accounts churned less often than their probability said (ARR-weighted expected churn 0.037
vs 0.028 observed per quarter on one company, 0.040 vs 0.028 on another, while the account
counts matched). The quarterly NRR forecast was biased low by 0.2-2.5 points.

`ArrTilt` is a two-parameter logistic recalibration on top of the model's probability:
logit p' = logit p + a + b * z, z the account's standardised log ARR, fitted by maximum
likelihood on the latest labelled snapshot rows (the model's probabilities there, the
observed labels). With a = b = 0 nothing changes; with too few churns to fit (fewer than
`MIN_EVENTS`), it stays the identity. Measured on four simulated companies (one-quarter
expected NRR against the actual, nine origins each), it cut the RMSE by 10-15% on each
(0.033 -> 0.028, 0.037 -> 0.033, 0.027 -> 0.024, 0.017 -> 0.015).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.optimize import minimize
from scipy.special import expit, logit

FloatArray = npt.NDArray[np.float64]
MIN_EVENTS = 20  # churns on the fitting rows below which the tilt is not fitted
LABELLED_DATES = 6  # latest labelled snapshot dates the tilt is fitted on
_CLIP = 1e-6


@dataclass(frozen=True)
class ArrTilt:
    """logit p' = logit p + intercept + slope * (log ARR - centre) / scale."""

    intercept: float = 0.0
    slope: float = 0.0
    centre: float = 0.0
    scale: float = 1.0
    rows: int = 0
    events: int = 0

    @property
    def identity(self) -> bool:
        return self.intercept == 0.0 and self.slope == 0.0

    def apply(self, p: npt.ArrayLike, arr: npt.ArrayLike) -> FloatArray:
        """The tilted probabilities; the input unchanged for the identity."""
        q = np.asarray(p, dtype=float)
        if self.identity:
            return q
        z = (np.log(np.maximum(np.asarray(arr, dtype=float), _CLIP)) - self.centre) / self.scale
        return np.asarray(expit(_logit(q) + self.intercept + self.slope * z), dtype=float)

    def describe(self) -> str:
        if self.identity:
            if self.events < MIN_EVENTS:
                return (
                    f"churn probabilities used as scored ({self.events} churns on the latest "
                    f"labelled dates, {MIN_EVENTS} needed to check them by ARR)"
                )
            return "churn probabilities used as scored"
        factor = float(np.exp(self.slope))
        return (
            f"churn probabilities checked against account size on {self.rows:,} labelled "
            f"rows ({self.events} churns): a larger account's churn odds x{factor:.2f} per "
            "standard deviation of log ARR"
        )


def _logit(p: FloatArray) -> FloatArray:
    return np.asarray(logit(np.clip(p, _CLIP, 1.0 - _CLIP)), dtype=float)


def fit_arr_tilt(p: npt.ArrayLike, churned: npt.ArrayLike, arr: npt.ArrayLike) -> ArrTilt:
    """Maximum-likelihood (intercept, slope) of the tilt on labelled rows.

    `p` the model's churn probabilities, `churned` 0/1 labels, `arr` ARR at the row's date.
    Rows with a non-finite value or ARR <= 0 are left out.
    """
    q, y, a = (np.asarray(v, dtype=float) for v in (p, churned, arr))
    if not (q.shape == y.shape == a.shape):
        raise ValueError(f"p, churned and arr differ in length: {q.shape}, {y.shape}, {a.shape}")
    ok = np.isfinite(q) & np.isfinite(y) & np.isfinite(a) & (a > 0)
    q, y, a = q[ok], y[ok], a[ok]
    events = int(y.sum())
    if events < MIN_EVENTS or events == y.size:
        return ArrTilt(rows=int(y.size), events=events)
    log_arr = np.log(a)
    centre, scale = float(log_arr.mean()), float(log_arr.std())
    z = (log_arr - centre) / scale if scale > 0 else np.zeros_like(log_arr)
    offset = _logit(q)

    def loss(theta: FloatArray) -> tuple[float, FloatArray]:
        eta = offset + theta[0] + theta[1] * z
        # log(1 + e^eta) - y * eta, and its gradient, stable for large |eta|
        value = float(np.sum(np.logaddexp(0.0, eta) - y * eta))
        resid = expit(eta) - y
        return value, np.array([resid.sum(), (resid * z).sum()])

    theta = minimize(loss, np.zeros(2), jac=True, method="BFGS").x
    return ArrTilt(
        float(theta[0]),
        float(theta[1]) if scale > 0 else 0.0,
        centre,
        scale if scale > 0 else 1.0,
        rows=int(y.size),
        events=events,
    )


def latest_labelled(rows: npt.ArrayLike, dates: int = LABELLED_DATES) -> npt.NDArray[np.bool_]:
    """Mask of the rows at the `dates` latest distinct as_of values of `rows` (as_of values)."""
    values = np.asarray(rows)
    keep = np.unique(values)[-dates:]
    return np.isin(values, keep)
