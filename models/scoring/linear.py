"""A logistic-regression scorer stored as plain JSON numbers (no pickle, no sklearn at scoring).

It reads the same design array as the LightGBM booster (`models.scoring.booster.design_array`:
numbers as floats, categories as integer codes of the learned levels, NaN for missing or
unknown), so serving builds one input for either recipe. The encoding is the classic
baseline's:

- a numeric feature is median-imputed (non-finite values count as missing), clipped to the
  range seen in training, standardised with the training mean and standard deviation, and,
  when it was missing on some training rows, gets a standardised missing indicator beside it;
- a categorical feature is one-hot over the learned levels; a missing or unknown level has
  no column (all zeros: the reference).

Raw score (log-odds) = intercept + the sum of one term per feature. `contributions` reports
each term minus its training-row mean, so a contribution says "vs the average account" (the
exact SHAP value of a linear model with independent features); the last column is the base
value (intercept + the mean terms) and each row sums to the raw score, like TreeSHAP's.

Why the clip: a line extrapolates without bound. On a 400-account company one hold-out value
of a rate five times the training maximum scored -40 log-odds, and the Platt calibrator fitted
on such scores came out with a negative slope, turning a 0.74 ROC-AUC ranking into 0.26. The
clip changes nothing on training rows (the coefficients are sklearn's) and, like a tree,
keeps the score flat beyond the values the model has seen, at serving too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

LINEAR_KIND = "logistic"


@dataclass(frozen=True)
class NumericTerm:
    """coef * (clip(value_or_median, low, high) - mean) / scale
    [+ missing_coef * (is_missing - missing_mean) / missing_scale]."""

    median: float
    mean: float
    scale: float
    coef: float
    # (mean, scale, coef) of the standardised missing indicator; None: no training row missed it.
    missing: tuple[float, float, float] | None = None
    # The range of the (imputed) training values; scoring clips into it.
    low: float = -np.inf
    high: float = np.inf

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "numeric",
            "median": self.median,
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "low": self.low,
            "high": self.high,
            "missing": None,
        }
        if self.missing is not None:
            m_mean, m_scale, m_coef = self.missing
            out["missing"] = {"mean": m_mean, "scale": m_scale, "coef": m_coef}
        return out


@dataclass(frozen=True)
class CategoryTerm:
    """coefs[code] for a known level; 0 for a missing or unknown one (the reference)."""

    coefs: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "category", "coefs": list(self.coefs)}


Term = NumericTerm | CategoryTerm


@dataclass(frozen=True)
class LinearScorer:
    """Intercept + one term per feature of the design array, in `feature_names` order."""

    feature_names: tuple[str, ...]
    terms: tuple[Term, ...]
    intercept: float
    # Training-row mean of each term: contributions are centred on it.
    centres: tuple[float, ...]
    # How the coefficients were fitted (C, max_iter, ...): provenance only.
    solver: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.feature_names)
        if len(self.terms) != n or len(self.centres) != n:
            raise ValueError(
                f"linear scorer: {n} features but {len(self.terms)} terms and "
                f"{len(self.centres)} centres"
            )
        values = [self.intercept, *self.centres]
        for term in self.terms:
            if isinstance(term, NumericTerm):
                values += [term.median, term.mean, term.scale, term.coef, *(term.missing or ())]
                values += [term.low, term.high]
                scales = [term.scale] + ([term.missing[1]] if term.missing else [])
                if any(s <= 0 for s in scales):
                    raise ValueError("linear scorer: scales must be positive")
                if not term.low <= term.high:
                    raise ValueError("linear scorer: a clip range must have low <= high")
            else:
                values += list(term.coefs)
        if not np.isfinite(np.asarray(values, dtype=float)).all():
            raise ValueError("linear scorer: every number must be finite")

    # --- scoring -------------------------------------------------------------------------

    def terms_of(self, x: np.ndarray) -> np.ndarray:
        """(rows, features) log-odds term of each feature, not centred."""
        x = np.asarray(x, dtype=float)
        if x.ndim != 2 or x.shape[1] != len(self.feature_names):
            raise ValueError(
                f"design array must have {len(self.feature_names)} columns, got shape {x.shape}"
            )
        out = np.zeros(x.shape, dtype=float)
        for j, term in enumerate(self.terms):
            col = x[:, j]
            if isinstance(term, CategoryTerm):
                coefs = np.asarray(term.coefs, dtype=float)
                known = np.isfinite(col) & (col >= 0) & (col < len(coefs))
                out[known, j] = coefs[col[known].astype(np.int64)]
                continue
            missing = ~np.isfinite(col)
            value = np.clip(np.where(missing, term.median, col), term.low, term.high)
            out[:, j] = term.coef * (value - term.mean) / term.scale
            if term.missing is not None:
                m_mean, m_scale, m_coef = term.missing
                out[:, j] += m_coef * (missing.astype(float) - m_mean) / m_scale
        return out

    def predict_raw(self, x: np.ndarray) -> np.ndarray:
        """Log-odds per row of a design array."""
        return np.asarray(self.intercept + self.terms_of(x).sum(axis=1), dtype=float)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """The logistic regression's own probability (sigmoid of the raw score)."""
        return np.asarray(1.0 / (1.0 + np.exp(-self.predict_raw(x))), dtype=float)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature log-odds vs the average training account; last column the base value."""
        centres = np.asarray(self.centres, dtype=float)
        contrib = self.terms_of(x) - centres
        base = np.full((contrib.shape[0], 1), self.intercept + float(centres.sum()))
        return np.hstack([contrib, base])

    # --- fitting -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: np.ndarray,
        *,
        feature_names: Sequence[str],
        levels: Mapping[str, Sequence[str]],
        c: float = 1.0,
        max_iter: int = 2000,
        seed: int = 0,
    ) -> LinearScorer:
        """L2 logistic regression (sklearn's lbfgs) on the encoded design array; numbers only kept."""
        x = np.asarray(x, dtype=float)
        y = np.asarray(labels, dtype=float)
        names = tuple(feature_names)
        if x.ndim != 2 or x.shape != (len(y), len(names)):
            raise ValueError(
                f"design array shape {x.shape} does not match {len(y)} labels x {len(names)} features"
            )
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("labels must be 0/1")
        encoders: list[tuple[Term, list[int]]] = []
        blocks: list[np.ndarray] = []
        width = 0
        for j, name in enumerate(names):
            col = x[:, j]
            if name in levels:
                n_levels = len(levels[name])
                codes = np.where(np.isfinite(col), col, -1).astype(np.int64)
                onehot = (codes[:, None] == np.arange(n_levels)[None, :]).astype(float)
                blocks.append(onehot)
                encoders.append(
                    (CategoryTerm((0.0,) * n_levels), list(range(width, width + n_levels)))
                )
                width += n_levels
                continue
            missing = ~np.isfinite(col)
            # Like SimpleImputer(keep_empty_features=True): a feature never seen imputes 0.
            median = float(np.median(col[~missing])) if (~missing).any() else 0.0
            value = np.where(missing, median, col)
            low, high = (float(value.min()), float(value.max())) if len(value) else (0.0, 0.0)
            mean, scale = _standardiser(value)
            blocks.append(((value - mean) / scale)[:, None])
            cols = [width]
            width += 1
            indicator: tuple[float, float, float] | None = None
            if missing.any():
                m_mean, m_scale = _standardiser(missing.astype(float))
                blocks.append(((missing.astype(float) - m_mean) / m_scale)[:, None])
                indicator = (m_mean, m_scale, 0.0)
                cols.append(width)
                width += 1
            encoders.append((NumericTerm(median, mean, scale, 0.0, indicator, low, high), cols))
        design = np.hstack(blocks) if blocks else np.zeros((len(y), 0))
        solver = {"C": float(c), "max_iter": int(max_iter), "penalty": "l2", "solver": "lbfgs"}
        weights, intercept = _solve(design, y, c=c, max_iter=max_iter, seed=seed)
        terms: list[Term] = []
        for term, cols in encoders:
            if isinstance(term, CategoryTerm):
                terms.append(CategoryTerm(tuple(float(weights[k]) for k in cols)))
            else:
                missing_term = None
                if term.missing is not None:
                    missing_term = (term.missing[0], term.missing[1], float(weights[cols[1]]))
                coef = float(weights[cols[0]])
                terms.append(replace(term, coef=coef, missing=missing_term))
        zero_centres = (0.0,) * len(names)
        scorer = cls(names, tuple(terms), float(intercept), zero_centres, solver)
        centres = (
            tuple(float(v) for v in scorer.terms_of(x).mean(axis=0)) if len(x) else zero_centres
        )
        return cls(names, tuple(terms), float(intercept), centres, solver)

    # --- JSON ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: intercept, one entry per feature (in design-array order), solver."""
        return {
            "kind": LINEAR_KIND,
            "intercept": self.intercept,
            "terms": [
                {"feature": name, "centre": centre, **term.to_dict()}
                for name, term, centre in zip(
                    self.feature_names, self.terms, self.centres, strict=True
                )
            ],
            "solver": dict(self.solver),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinearScorer:
        """Inverse of `to_dict`; ValueError on a malformed payload."""
        try:
            if data.get("kind") != LINEAR_KIND:
                raise ValueError(f"kind must be {LINEAR_KIND!r}, got {data.get('kind')!r}")
            names: list[str] = []
            terms: list[Term] = []
            centres: list[float] = []
            for entry in data["terms"]:
                names.append(str(entry["feature"]))
                centres.append(float(entry["centre"]))
                if entry["kind"] == "category":
                    terms.append(CategoryTerm(tuple(float(v) for v in entry["coefs"])))
                elif entry["kind"] == "numeric":
                    miss = entry.get("missing")
                    missing = (
                        None
                        if miss is None
                        else (float(miss["mean"]), float(miss["scale"]), float(miss["coef"]))
                    )
                    terms.append(
                        NumericTerm(
                            float(entry["median"]),
                            float(entry["mean"]),
                            float(entry["scale"]),
                            float(entry["coef"]),
                            missing,
                            float(entry["low"]),
                            float(entry["high"]),
                        )
                    )
                else:
                    raise ValueError(f"unknown term kind {entry['kind']!r}")
            return cls(
                tuple(names),
                tuple(terms),
                float(data["intercept"]),
                tuple(centres),
                dict(data.get("solver") or {}),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed linear scorer: {exc!r}") from exc


def _standardiser(values: np.ndarray) -> tuple[float, float]:
    """StandardScaler's mean and scale (population std; 1 for a constant column)."""
    if not len(values):
        return 0.0, 1.0
    mean = float(values.mean())
    std = float(values.std())
    return mean, std if std > 0 and np.isfinite(std) else 1.0


def _solve(
    design: np.ndarray, y: np.ndarray, *, c: float, max_iter: int, seed: int
) -> tuple[np.ndarray, float]:
    """Coefficients and intercept of sklearn's L2 logistic regression; one class -> its log-odds."""
    positives, n = float(y.sum()), len(y)
    if n == 0 or positives in (0.0, float(n)) or design.shape[1] == 0:
        # One class (or no feature) cannot be fitted: every account gets the base rate.
        rate = (positives + 0.5) / (n + 1.0)
        return np.zeros(design.shape[1]), float(np.log(rate / (1.0 - rate)))
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
    model.fit(design, y.astype(int))
    return np.asarray(model.coef_[0], dtype=float), float(model.intercept_[0])
