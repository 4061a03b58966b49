"""Rolling-origin backtest: model vs baselines (vs oracle) per fold, pooled and per segment."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import RulesConfig
from models.scoring.booster import model_features
from training.baselines import RuleBaseline
from training.config import EvaluationConfig, ExperimentConfig, Target
from training.fit import Recipe, fit_linear_model, fit_recipe, fit_scoring_model, target_labels
from training.folds import Fold, experiment_folds
from training.metrics import (
    early_warning_share,
    flagged_high_risk,
    probability_metrics,
    ranking_metrics,
)

SCORERS = ("model", "logistic", "rules", "oracle")
# The backtest column that scores each servable recipe (the gate's challenger scores).
RECIPE_COLUMN: dict[str, str] = {"lightgbm": "p_model", "logistic": "p_logistic"}
ORACLE_COLUMN: dict[str, str] = {"churn": "p_churn", "expansion": "p_expand"}
# Columns of a health category's risk in the churn predictions: h_<category>.
CATEGORY_PREFIX = "h_"
SEGMENT_COLUMNS = ("segment", "plan", "arr_band", "tenure_band")
Progress = Callable[[str], None]


@dataclass(frozen=True)
class BacktestResult:
    """Out-of-time predictions of every scorer and their metrics table."""

    target: Target
    folds: tuple[Fold, ...]
    predictions: pd.DataFrame
    metrics: pd.DataFrame
    # Per fold, the booster's complexity choice (booster.complexity cross_validated) or None.
    complexity: tuple[dict[str, Any] | None, ...] = ()


def labelled_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows whose label window is complete, in (as_of, account_id) order, fresh index."""
    if "labelled" not in frame.columns:
        raise ValueError("snapshot frame has no 'labelled' column")
    rows = frame[frame["labelled"].astype(bool)]
    return rows.sort_values(["as_of", "account_id"], kind="stable").reset_index(drop=True)


def run_backtest(
    frame: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    rules: RulesConfig,
    overrides: Mapping[str, Any] | None = None,
    oracle: pd.DataFrame | None = None,
    progress: Progress | None = None,
    folds: Sequence[Fold] | None = None,
) -> BacktestResult:
    """Train each scorer on a fold's past, score the fold's window; never a random split.

    `folds` (row positions in `labelled_rows(frame)`) replaces the experiment's rolling
    cuts, e.g. the quarter starts of `nrr evaluate`.
    """
    rows = labelled_rows(frame)
    folds = list(folds) if folds is not None else _backtest_folds(rows, config)
    parts, complexity = [], []
    for fold in folds:
        part, chosen = _fold_predictions(
            rows, fold, target=target, config=config, rules=rules, overrides=overrides
        )
        parts.append(part)
        complexity.append(chosen)
        if progress is not None:
            progress(f"{target} fold {fold.index} (cut {fold.cut.date()})")
    predictions = _with_segments(pd.concat(parts, ignore_index=True), config.evaluation)
    if oracle is not None:
        predictions = _join_oracle(predictions, oracle, target=target)
    metrics = score_table(predictions, target=target, evaluation=config.evaluation)
    return BacktestResult(target, tuple(folds), predictions, metrics, tuple(complexity))


def _backtest_folds(rows: pd.DataFrame, config: ExperimentConfig) -> list[Fold]:
    """The experiment's rolling-origin folds over labelled rows (shared by every recipe)."""
    return experiment_folds(rows, config, folds=config.backtest.folds)


def recipe_predictions(
    frame: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    overrides: Mapping[str, Any] | None,
    features: Sequence[str],
    recipe: Recipe = "lightgbm",
) -> np.ndarray:
    """Another recipe's out-of-time probabilities on the same folds, in `run_backtest` row order.

    "lightgbm" refits the booster with `overrides`; "logistic" the linear recipe (no
    parameters), exactly as the backtest scores its "logistic" column.
    """
    rows = labelled_rows(frame)
    folds = _backtest_folds(rows, config)
    parts = []
    for fold in folds:
        train, test = rows.iloc[fold.train], rows.iloc[fold.test]
        model = fit_recipe(
            train,
            recipe=recipe,
            target=target,
            config=config,
            overrides=overrides,
            features=features,
        )
        parts.append(model.predict_proba(test))
    return np.concatenate(parts)


def _fold_predictions(
    rows: pd.DataFrame,
    fold: Fold,
    *,
    target: Target,
    config: ExperimentConfig,
    rules: RulesConfig,
    overrides: Mapping[str, Any] | None,
) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    train, test = rows.iloc[fold.train], rows.iloc[fold.test]
    y_train = target_labels(train, target)
    features = model_features(rows)
    model = fit_scoring_model(
        train, target=target, config=config, overrides=overrides, features=features
    )
    # The logistic column is the servable logistic recipe (hold-out calibration included),
    # so choosing it on these numbers serves what was measured.
    logistic = fit_linear_model(train, target=target, config=config, features=features)
    rule = RuleBaseline.fit(train, y_train, target=target, rules=rules)
    keep = [
        c
        for c in ("account_id", "as_of", "churn_at", "segment", "plan", "arr", "tenure_days")
        if c in test
    ]
    out = test[keep].reset_index(drop=True)
    out["fold"] = fold.index
    out["label"] = target_labels(test, target)
    out["p_model"] = model.predict_proba(test)
    out["p_logistic"] = logistic.predict_proba(test)
    out["p_rules"] = rule.predict_proba(test, rules=rules)
    out["r_rules"] = rule.risk(test, rules=rules)
    if target == "churn":
        # Each health category's sub-score as a risk (100 - score; NaN when the category
        # has no signal), for its own AUC: which categories carry signal on this company.
        for name, risk in rule.category_risks(test, rules=rules).items():
            out[f"{CATEGORY_PREFIX}{name}"] = risk
    return out, model.metadata.get("complexity")


def _band(values: pd.Series, edges: Sequence[float], unit: str) -> pd.Series:
    labels = [f"<{edges[0]:g}{unit}"]
    labels += [f"{lo:g}-{hi:g}{unit}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels += [f">={edges[-1]:g}{unit}"]
    bands = pd.cut(values, [-np.inf, *edges, np.inf], right=False, labels=labels)
    return bands.astype("string")


def _with_segments(predictions: pd.DataFrame, evaluation: EvaluationConfig) -> pd.DataFrame:
    out = predictions.copy()
    if "arr" in out:
        out["arr_band"] = _band(out["arr"], evaluation.arr_bands, "")
    if "tenure_days" in out:
        out["tenure_band"] = _band(out["tenure_days"], evaluation.tenure_bands_days, "d")
    return out


def _join_oracle(
    predictions: pd.DataFrame, oracle: pd.DataFrame, *, target: Target
) -> pd.DataFrame:
    column = ORACLE_COLUMN[target]
    missing = {"account_id", "as_of", column} - set(oracle.columns)
    if missing:
        raise ValueError(f"oracle table lacks column(s) {sorted(missing)}")
    truth = oracle[["account_id", "as_of", column]].rename(columns={column: "p_oracle"})
    truth = truth.assign(
        account_id=truth["account_id"].astype("string"),
        as_of=_naive_utc(truth["as_of"]).astype(predictions["as_of"].dtype),
    ).drop_duplicates(["account_id", "as_of"])
    return predictions.merge(truth, on=["account_id", "as_of"], how="left", validate="many_to_one")


def _naive_utc(values: pd.Series) -> pd.Series:
    stamps = pd.to_datetime(values)
    # Simulator and exports may write tz-aware UTC; snapshots use naive UTC.
    return stamps.dt.tz_convert("UTC").dt.tz_localize(None) if stamps.dt.tz is not None else stamps


def score_table(
    predictions: pd.DataFrame, *, target: Target, evaluation: EvaluationConfig
) -> pd.DataFrame:
    """One row per (scope, group, scorer): n, positives and every metric."""
    records: list[dict[str, Any]] = []
    scopes: list[tuple[str, str, pd.DataFrame]] = [("pooled", "all", predictions)]
    scopes += [("fold", str(k), part) for k, part in predictions.groupby("fold", sort=True)]
    for column in SEGMENT_COLUMNS:
        if column in predictions:
            scopes += [(column, str(k), part) for k, part in predictions.groupby(column, sort=True)]
    for scope, group, part in scopes:
        for scorer in SCORERS:
            record = _scorer_metrics(part, scorer=scorer, target=target, evaluation=evaluation)
            if record is not None:
                records.append({"scope": scope, "group": group, "scorer": scorer, **record})
    return pd.DataFrame.from_records(records)


def _scorer_metrics(
    part: pd.DataFrame, *, scorer: str, target: Target, evaluation: EvaluationConfig
) -> dict[str, float] | None:
    prob_col = f"p_{scorer}"
    if prob_col not in part:
        return None
    part = part[part[prob_col].notna()]
    if part.empty:
        return None
    y = part["label"].to_numpy(dtype=float)
    p = part[prob_col].to_numpy(dtype=float)
    rank = part[f"r_{scorer}"].to_numpy(dtype=float) if f"r_{scorer}" in part else p
    record: dict[str, float] = {"n": float(len(part)), "positives": float(y.sum())}
    record |= ranking_metrics(y, rank, budget=evaluation.review_budget)
    record |= probability_metrics(y, p, bins=evaluation.ece_bins)
    if target == "churn" and "churn_at" in part:
        flags = flagged_high_risk(
            part["as_of"],
            rank if evaluation.high_risk_threshold is None else p,
            share=evaluation.high_risk_share,
            threshold=evaluation.high_risk_threshold,
        )
        share, counted = early_warning_share(part, flags, lead_days=evaluation.lead_days)
        record |= {"early_warning_share": share, "early_warning_accounts": float(counted)}
    return record


def choose_recipe(table: pd.DataFrame) -> dict[str, Any]:
    """The recipe to serve: the logistic regression when it out-ranks LightGBM on the backtest.

    `table` is `pooled(metrics)`. The served recipe is then never worse than the simple
    baseline on these rows (ROC-AUC); a tie keeps LightGBM. The result (recipe, a sentence,
    both ROC-AUCs) is plain JSON, stored in the model's metadata.
    """
    model_auc = _pooled_auc(table, "model")
    logistic_auc = _pooled_auc(table, "logistic")
    recipe: Recipe = "lightgbm"
    if logistic_auc is not None and (model_auc is None or logistic_auc > model_auc):
        recipe = "logistic"
    m, lo = (("n/a" if v is None else f"{v:.3f}") for v in (model_auc, logistic_auc))
    if recipe == "logistic":
        reason = f"logistic regression: backtest ROC-AUC {lo} beats LightGBM's {m}"
    else:
        reason = f"LightGBM: backtest ROC-AUC {m} vs logistic {lo}"
    return {
        "recipe": recipe,
        "reason": reason,
        "lightgbm_roc_auc": model_auc,
        "logistic_roc_auc": logistic_auc,
    }


def _pooled_auc(table: pd.DataFrame, scorer: str) -> float | None:
    if scorer not in table.index or "roc_auc" not in table.columns:
        return None
    value = table.loc[scorer, "roc_auc"]
    return None if pd.isna(value) else float(value)


def pooled(metrics: pd.DataFrame) -> pd.DataFrame:
    """The pooled rows of a metrics table, indexed by scorer."""
    return (
        metrics[metrics["scope"] == "pooled"].set_index("scorer").drop(columns=["scope", "group"])
    )
