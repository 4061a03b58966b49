"""A trained churn or expansion model: LightGBM booster or linear scorer, features, levels, calibrator."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.registry import BY_NAME, INFO_COLUMNS, KEY_COLUMNS, LABEL_COLUMNS
from models.scoring.calibration import Calibrator
from models.scoring.linear import LINEAR_KIND, LinearScorer

MODEL_FILE = "model.txt"
META_FILE = "model.json"
# 1: a LightGBM booster in model.txt (folders written before the linear recipe say nothing
# else). 2: adds "kind"; a "logistic" model keeps its coefficients in model.json and has no
# model.txt. Boosters are still written as 1, which every release reads; a linear model is
# 2, so an older release refuses it by its version instead of a missing model.txt.
FORMAT_VERSION = 1
LINEAR_FORMAT_VERSION = 2
SUPPORTED_FORMATS = (FORMAT_VERSION, LINEAR_FORMAT_VERSION)
BOOSTER_KIND = "lightgbm"


def model_features(frame: pd.DataFrame) -> list[str]:
    """Registry features present as columns of a snapshot frame, in registry order."""
    present = set(frame.columns) - set(KEY_COLUMNS) - set(INFO_COLUMNS) - set(LABEL_COLUMNS)
    return [name for name in BY_NAME if name in present]


def categorical_features(features: Sequence[str]) -> list[str]:
    """The features among `features` whose registry kind is "category"."""
    return [name for name in features if BY_NAME[name].kind == "category"]


def learn_levels(frame: pd.DataFrame, features: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Sorted distinct non-missing values of each categorical feature (learned on training rows)."""
    return {
        name: tuple(sorted(str(v) for v in frame[name].dropna().unique()))
        for name in categorical_features(features)
    }


def design_matrix(
    frame: pd.DataFrame,
    *,
    features: Sequence[str],
    levels: Mapping[str, Sequence[str]],
) -> pd.DataFrame:
    """float64 matrix of `features`; categories as integer codes of `levels`, unknown -> NaN."""
    x = design_array(frame, features=features, levels=levels)
    return pd.DataFrame(x, index=frame.index, columns=list(features))


def design_array(
    frame: Any,
    *,
    features: Sequence[str],
    levels: Mapping[str, Sequence[str]],
) -> np.ndarray:
    """`design_matrix` as a C-ordered float64 array, of a DataFrame or any table of columns.

    A table is anything with `columns`, `len()` and `table[name]` (e.g. `models.table.Table`).
    """
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise ValueError(f"snapshot frame lacks model feature column(s): {missing}")
    out = np.empty((len(frame), len(features)), dtype="float64")
    for j, name in enumerate(features):
        col = frame[name]
        if name in levels:
            codes = {level: float(i) for i, level in enumerate(levels[name])}
            out[:, j] = [codes.get(str(v), np.nan) if not pd.isna(v) else np.nan for v in col]
        else:
            try:
                out[:, j] = _float_values(col)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature {name!r} is not numeric: {exc}") from exc
    return out


def _float_values(col: Any) -> np.ndarray:
    if isinstance(col, np.ndarray) and col.dtype.kind in "fiub":
        return col.astype("float64", copy=False)
    if isinstance(col, pd.Series):
        return col.to_numpy(dtype="float64", na_value=np.nan)
    return pd.Series(col).to_numpy(dtype="float64", na_value=np.nan)


# Rows per call from which LightGBM's OpenMP pool pays for itself; below, one thread.
PARALLEL_ROWS = 64


def prediction_threads(rows: int) -> int:
    """LightGBM threads for one call: 1 for a few rows (no pool overhead), all cores for a batch.

    Always explicit: LightGBM keeps the last value as a process-wide default.
    """
    return 1 if rows < PARALLEL_ROWS else max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ScoringModel:
    """A LightGBM booster or a linear scorer + the features, levels and calibration it was trained with.

    Exactly one of `booster` and `linear` scores; every caller uses the same methods, and the
    input is the same design array (`matrix_array`) for both.
    """

    booster: lgb.Booster | None
    feature_names: tuple[str, ...]
    levels: dict[str, tuple[str, ...]]
    calibrator: Calibrator | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    linear: LinearScorer | None = None

    @property
    def kind(self) -> str:
        """The recipe that scores: "lightgbm" or "logistic"."""
        return LINEAR_KIND if self.linear is not None else BOOSTER_KIND

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The model's input matrix for a snapshot frame."""
        return design_matrix(frame, features=self.feature_names, levels=self.levels)

    def matrix_array(self, frame: Any) -> np.ndarray:
        """The model's input as a float64 array: build it once, pass it to every call below."""
        return design_array(frame, features=self.feature_names, levels=self.levels)

    def _input(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        # An ndarray is a matrix already built by `matrix_array` (same numbers, no rebuild).
        return frame if isinstance(frame, np.ndarray) else self.matrix_array(frame)

    def _booster(self) -> lgb.Booster:
        if self.booster is None:
            raise ValueError("this ScoringModel holds neither a booster nor a linear scorer")
        return self.booster

    def predict_raw(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Raw score (log-odds) per row."""
        x = self._input(frame)
        if self.linear is not None:
            return self.linear.predict_raw(x)
        out = self._booster().predict(x, raw_score=True, num_threads=prediction_threads(len(x)))
        return np.asarray(out, dtype=float)

    def predict_proba(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Calibrated probability per row (the raw score's sigmoid when no calibrator)."""
        raw = self.predict_raw(frame)
        if self.calibrator is None:
            return 1.0 / (1.0 + np.exp(-raw))
        return self.calibrator.predict(raw)

    def contributions(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Per-feature contributions in log-odds; last column is the base value; rows sum to raw.

        TreeSHAP for a booster; for a linear scorer each term minus its training mean.
        """
        x = self._input(frame)
        if self.linear is not None:
            return self.linear.contributions(x)
        out = self._booster().predict(x, pred_contrib=True, num_threads=prediction_threads(len(x)))
        return np.asarray(out, dtype=float)

    def save(self, directory: Path) -> None:
        """Write model.json (features, levels, calibrator; a linear scorer's coefficients) and,
        for a booster, model.txt (LightGBM native)."""
        directory.mkdir(parents=True, exist_ok=True)
        if self.linear is None:
            self._booster().save_model(str(directory / MODEL_FILE))
        (directory / META_FILE).write_text(json.dumps(self.to_dict(), indent=2, default=str))

    def to_dict(self) -> dict[str, Any]:
        """Everything but the booster, JSON-serialisable."""
        out: dict[str, Any] = {
            "format_version": FORMAT_VERSION if self.linear is None else LINEAR_FORMAT_VERSION,
            "kind": self.kind,
            "feature_names": list(self.feature_names),
            "levels": {k: list(v) for k, v in self.levels.items()},
            "calibrator": None if self.calibrator is None else self.calibrator.to_dict(),
            "metadata": self.metadata,
        }
        if self.linear is not None:
            out["linear"] = self.linear.to_dict()
        return out

    @classmethod
    def load(cls, directory: Path) -> ScoringModel:
        """Read a folder written by `save` (or an MLflow model folder holding it in extra_files/)."""
        if (
            not (directory / META_FILE).is_file()
            and (directory / "extra_files" / META_FILE).is_file()
        ):
            directory = directory / "extra_files"
        model_path, meta_path = directory / MODEL_FILE, directory / META_FILE
        if not meta_path.is_file():
            absent = [p.name for p in (model_path, meta_path) if not p.is_file()]
            raise FileNotFoundError(f"model folder {directory} lacks {' and '.join(absent)}")
        meta = json.loads(meta_path.read_text())
        if meta.get("format_version") not in SUPPORTED_FORMATS:
            raise ValueError(
                f"{meta_path}: unsupported format_version {meta.get('format_version')}"
            )
        kind = meta.get("kind", BOOSTER_KIND)
        features = tuple(meta["feature_names"])
        levels = {k: tuple(v) for k, v in meta["levels"].items()}
        booster: lgb.Booster | None = None
        linear: LinearScorer | None = None
        if kind == BOOSTER_KIND:
            if not model_path.is_file():
                raise FileNotFoundError(f"model folder {directory} lacks {model_path.name}")
            booster = lgb.Booster(model_file=str(model_path))
            if tuple(booster.feature_name()) != features:
                raise ValueError(f"{directory}: model.txt features differ from model.json")
        elif kind == LINEAR_KIND:
            if "linear" not in meta:
                raise ValueError(f"{meta_path}: a {LINEAR_KIND} model lacks its 'linear' entry")
            linear = LinearScorer.from_dict(meta["linear"])
            _check_linear(linear, features=features, levels=levels, where=meta_path)
        else:
            raise ValueError(f"{meta_path}: unknown model kind {kind!r}")
        calib = meta.get("calibrator")
        return cls(
            booster=booster,
            feature_names=features,
            levels=levels,
            calibrator=None if calib is None else Calibrator.from_dict(calib),
            metadata=dict(meta.get("metadata", {})),
            linear=linear,
        )


def _check_linear(
    linear: LinearScorer,
    *,
    features: tuple[str, ...],
    levels: Mapping[str, Sequence[str]],
    where: Path,
) -> None:
    """The scorer's terms line up with the model's features and category levels."""
    from models.scoring.linear import CategoryTerm

    if linear.feature_names != features:
        raise ValueError(f"{where}: linear terms' features differ from feature_names")
    for name, term in zip(features, linear.terms, strict=True):
        is_category = isinstance(term, CategoryTerm)
        if is_category != (name in levels) or (
            isinstance(term, CategoryTerm) and len(term.coefs) != len(levels[name])
        ):
            raise ValueError(f"{where}: linear term of {name!r} does not match its levels")
