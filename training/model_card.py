"""A markdown model card: data window, features, metrics vs baselines, segments, limits."""

from __future__ import annotations

import pandas as pd

from features.registry import BY_NAME
from models.scoring.booster import ScoringModel

METRIC_COLUMNS = (
    "n",
    "positives",
    "roc_auc",
    "pr_auc",
    "brier",
    "log_loss",
    "ece",
    "lift_top_decile",
    "recall_at_budget",
    "early_warning_share",
)


def _table(frame: pd.DataFrame, index: list[str]) -> str:
    cols = [c for c in METRIC_COLUMNS if c in frame.columns]
    header = "| " + " | ".join(index + cols) + " |"
    rule = "|" + "---|" * (len(index) + len(cols))
    lines = [header, rule]
    for _, row in frame.iterrows():
        cells = [str(row[i]) for i in index]
        cells += ["" if pd.isna(row[c]) else f"{row[c]:.4g}" for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def model_card(
    *,
    model: ScoringModel,
    metrics: pd.DataFrame,
    decision: str,
    data_window: tuple[str, str],
) -> str:
    """Markdown text of the model card for one target."""
    meta = model.metadata
    target = str(meta.get("target", "?"))
    pooled = metrics[metrics["scope"] == "pooled"]
    segments = metrics[~metrics["scope"].isin(["pooled", "fold"]) & (metrics["scorer"] == "model")]
    folds = metrics[(metrics["scope"] == "fold")]
    features = "\n".join(f"- `{f}`: {BY_NAME[f].description}" for f in model.feature_names)
    refit = " (every labelled row, hold-out included)" if meta.get("refit_all_rows") else ""
    linear = model.kind == "logistic"
    what = "logistic regression (JSON coefficients)" if linear else "LightGBM booster"
    short = "regression" if linear else "booster"
    selection = meta.get("selection") or {}
    recipe = f"- Recipe: {what}"
    if selection.get("reason"):
        recipe += f"; chosen on the backtest: {selection['reason']}"
    fitted = (
        f"Seed {meta.get('seed')}; L2 penalty C={meta.get('params', {}).get('C')}."
        if linear
        else f"Seed {meta.get('seed')}; best iteration {meta.get('best_iteration')}."
    )
    contributions = (
        "Contributions (drivers) are each feature's log-odds term of the regression minus its\n"
        "  training mean (vs the average account); they rank drivers, they are not probability\n"
        "  differences."
        if linear
        else "Contributions (drivers) are in log-odds of the uncalibrated booster; they rank drivers,\n"
        "  they are not probability differences."
    )
    return f"""# Model card: nrr-{target}

Predicts the probability that an account will {"churn" if target == "churn" else "expand"}
within {meta.get("horizon_days", "?")} days of a snapshot date.

## Data
- Snapshot window: {data_window[0]} to {data_window[1]}
{recipe}
- Final model: {short} on {meta.get("train_rows")} rows{refit}, calibration
  ({meta.get("calibration_method")}) on the latest {meta.get("calibration_rows")} rows scored by a
  {short} trained before them; {meta.get("positives")} positive labels.
- {fitted}

## Backtest (rolling origin, out of time), pooled
{_table(pooled, ["scorer"])}

## Per fold
{_table(folds, ["group", "scorer"])}

## Per segment (model)
{_table(segments, ["scope", "group"])}

## Promotion
{decision}

## Features ({len(model.feature_names)})
{features}

## Known limits
- Trained on one company's history; segments with few positives have noisy metrics.
- The calibration hold-out is the latest months of the training data: a sudden change of
  base rate after it is not reflected until the next retraining.
- {contributions}
- Rows with unknown category levels are scored as if the category were missing.
"""
