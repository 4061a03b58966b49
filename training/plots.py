"""Evaluation and explanation figures written as PNG files (matplotlib Agg backend)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from models.scoring.booster import ScoringModel

SCORER_COLUMNS = {
    "model": "p_model",
    "logistic": "p_logistic",
    "rules": "r_rules",
    "oracle": "p_oracle",
}


def _scorers(predictions: pd.DataFrame) -> dict[str, np.ndarray]:
    rows = predictions.dropna(subset=[c for c in SCORER_COLUMNS.values() if c in predictions])
    return {
        name: rows[col].to_numpy(dtype=float) for name, col in SCORER_COLUMNS.items() if col in rows
    }


def calibration_figure(predictions: pd.DataFrame, *, bins: int = 10) -> Figure:
    """Observed rate vs mean predicted probability per bin, for each probabilistic scorer."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    y = predictions["label"].to_numpy(dtype=float)
    for name in ("model", "logistic", "rules", "oracle"):
        col = f"p_{name}"
        if col not in predictions:
            continue
        p = predictions[col].to_numpy(dtype=float)
        keep = ~np.isnan(p)
        which = np.minimum((p[keep] * bins).astype(int), bins - 1)
        xs = [p[keep][which == b].mean() for b in range(bins) if (which == b).any()]
        ys = [y[keep][which == b].mean() for b in range(bins) if (which == b).any()]
        ax.plot(xs, ys, marker="o", label=name)
    ax.set(xlabel="predicted probability", ylabel="observed rate", title="Calibration")
    ax.legend()
    return fig


def roc_pr_figure(predictions: pd.DataFrame) -> Figure:
    """ROC and precision-recall curves of every scorer."""
    fig = Figure(figsize=(10, 5))
    roc_ax, pr_ax = fig.subplots(1, 2)
    rows = predictions.dropna(subset=[c for c in SCORER_COLUMNS.values() if c in predictions])
    y = rows["label"].to_numpy(dtype=float)
    for name, score in _scorers(predictions).items():
        fpr, tpr, _ = roc_curve(y, score)
        precision, recall, _ = precision_recall_curve(y, score)
        roc_ax.plot(fpr, tpr, label=name)
        pr_ax.plot(recall, precision, label=name)
    roc_ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    pr_ax.set(xlabel="recall", ylabel="precision", title="Precision-recall")
    roc_ax.legend()
    return fig


def lift_figure(predictions: pd.DataFrame) -> Figure:
    """Cumulative share of positives found vs share of accounts reviewed."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    rows = predictions.dropna(subset=[c for c in SCORER_COLUMNS.values() if c in predictions])
    y = rows["label"].to_numpy(dtype=float)
    share = np.arange(1, len(y) + 1) / max(len(y), 1)
    for name, score in _scorers(predictions).items():
        found = np.cumsum(y[np.argsort(-score, kind="stable")]) / max(y.sum(), 1)
        ax.plot(share, found, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    ax.set(xlabel="share reviewed", ylabel="share of positives found", title="Cumulative gains")
    ax.legend()
    return fig


def shap_figures(model: ScoringModel, frame: pd.DataFrame, *, top: int = 4) -> dict[str, Figure]:
    """Mean |contribution| bar chart and dependence plots of the top features.

    TreeSHAP for a booster; for a logistic model the contributions are its centred log-odds
    terms (the linear model's exact SHAP values), so the same figures apply.
    """
    what = "SHAP" if model.kind == "lightgbm" else "contribution"
    contrib = model.contributions(frame)[:, :-1]
    importance = pd.Series(np.abs(contrib).mean(axis=0), index=model.feature_names)
    importance = importance.sort_values(ascending=False)
    figures: dict[str, Figure] = {}
    fig = Figure(figsize=(7, max(3, 0.3 * min(len(importance), 20))))
    ax = fig.subplots()
    shown = importance.head(20)[::-1]
    ax.barh(list(shown.index), shown.to_numpy())
    ax.set(xlabel=f"mean |{what}| (log-odds)", title="Global feature importance")
    figures["shap_summary"] = fig
    matrix = model.matrix(frame)
    for name in importance.head(top).index:
        dep = Figure(figsize=(5, 4))
        dax = dep.subplots()
        j = model.feature_names.index(name)
        dax.scatter(matrix[name], contrib[:, j], s=4, alpha=0.4)
        dax.set(xlabel=name, ylabel=f"{what} (log-odds)", title=f"Dependence: {name}")
        figures[f"shap_dependence_{name}"] = dep
    return figures


def cut_interval_figure(table: pd.DataFrame, *, metrics: tuple[str, ...]) -> Figure:
    """Per cut (and pooled), each scorer's value of `metrics` with its bootstrap interval.

    `table` is `training.evaluate_cuts.interval_table` (scope, group, cut, scorer, metric,
    value, low, high).
    """
    fig = Figure(figsize=(5 * len(metrics), 4))
    axes = np.atleast_1d(fig.subplots(1, len(metrics)))
    rows = table[table["scope"].isin(["cut", "pooled"])]
    scorers = [s for s in SCORER_COLUMNS if s in set(rows["scorer"])]
    for ax, metric in zip(axes, metrics, strict=True):
        part = rows[rows["metric"] == metric]
        groups = [("cut", g) for g in sorted(part.loc[part["scope"] == "cut", "group"].unique(),
                                              key=int)] + [("pooled", "all")]  # fmt: skip
        labels = []
        for scope, group in groups:
            sel = part[(part["scope"] == scope) & (part["group"] == group)]
            cut = sel["cut"].iloc[0] if "cut" in sel and len(sel) and sel["cut"].iloc[0] else ""
            labels.append(cut or "pooled")
        for k, scorer in enumerate(scorers):
            xs, ys, lo, hi = [], [], [], []
            for i, (scope, group) in enumerate(groups):
                sel = part[(part["scope"] == scope) & (part["group"] == group)
                           & (part["scorer"] == scorer)]  # fmt: skip
                if sel.empty:
                    continue
                row = sel.iloc[0]
                xs.append(i + (k - len(scorers) / 2) * 0.12)
                ys.append(row["value"])
                lo.append(row["value"] - row["low"])
                hi.append(row["high"] - row["value"])
            ax.errorbar(xs, ys, yerr=[lo, hi], fmt="o", capsize=3, label=scorer)
        ax.set_xticks(range(len(groups)), labels, rotation=30)
        ax.set(title=metric, xlabel="cut (quarter start)")
        if metric == "citl":
            ax.axhline(0.0, color="grey", linestyle=":")
    axes[0].legend()
    return fig


def write_figures(figures: dict[str, Figure], directory: Path) -> list[Path]:
    """Save each figure as <name>.png; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, fig in figures.items():
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=90, bbox_inches="tight")
        paths.append(path)
    return paths
