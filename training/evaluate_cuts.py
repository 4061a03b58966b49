"""`nrr evaluate`: the recipe trained at past quarter starts, scored with bootstrap intervals.

Each cut trains every scorer (LightGBM recipe, logistic baseline, rules) on what was known
at that quarter start (labels whose window had closed) and scores the quarter after it:
the backtest of `training.evaluate.run_backtest`, on quarter-start folds
(`training.folds.quarter_cuts`). Tuning, when the experiment has it, runs once on the rows
before the first cut, as in `nrr train`. The metrics, per cut and pooled, come with
account-level bootstrap intervals (`training.intervals.account_bootstrap`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import RulesConfig
from training.complexity import ComplexityChoice
from training.config import EvaluationConfig, ExperimentConfig, Target
from training.evaluate import CATEGORY_PREFIX, labelled_rows, run_backtest
from training.folds import Fold, NotEnoughHistoryError, folds_at, quarter_cuts
from training.history import _calibration_fits
from training.intervals import (
    DEFAULT_LEVEL,
    Ranked,
    account_bootstrap,
    brier,
    calibration_in_the_large,
    ece,
    interval_frame,
    pr_auc,
    recall_at_budget,
    roc_auc,
)
from training.metrics import flagged_high_risk

Progress = Callable[[str], None]
SCORERS = ("model", "logistic", "rules", "oracle")
# Review budgets of the recall columns: the share of accounts a CS team can look at.
BUDGETS = (0.1, 0.2)
# The metrics of every scorer, in report order (docs/EVALUATION.md defines each).
METRICS = (
    "roc_auc",
    "pr_auc",
    "brier",
    "ece",
    "citl",
    "recall_at_10",
    "recall_at_20",
    "early_arr_share",
    "early_account_share",
)
# Paired differences reported with their own interval (same resample for both scorers).
PAIRS = (("model", "logistic"), ("model", "oracle"), ("logistic", "oracle"))
COLUMNS = ("scope", "group", "scorer")


@dataclass(frozen=True)
class TargetEvaluation:
    """One target's evaluation: the folds, out-of-time predictions and the interval table."""

    target: Target
    folds: tuple[Fold, ...]
    predictions: pd.DataFrame
    table: pd.DataFrame  # scope, group, scorer, metric, value, low, high
    notes: tuple[str, ...] = field(default_factory=tuple)
    overrides: dict[str, Any] = field(default_factory=dict)


def evaluation_folds(rows: pd.DataFrame, config: ExperimentConfig, *, cuts: int) -> list[Fold]:
    """Folds at the last `cuts` quarter starts of labelled `rows` whose training fits the
    experiment's calibration hold-out; a clear NotEnoughHistoryError otherwise."""
    horizon = config.snapshot.horizon_days
    dates = quarter_cuts(rows["as_of"], rows["labelled"], cuts=cuts, horizon_days=horizon)
    folds = folds_at(rows["as_of"], rows["labelled"], cuts=dates, horizon_days=horizon)
    calibration = config.calibration
    for fold in folds:
        if len(fold.test) == 0:
            raise NotEnoughHistoryError(f"cut {fold.cut.date()} has no labelled rows after it")
        fits = _calibration_fits(
            rows["as_of"].iloc[fold.train].reset_index(drop=True),
            horizon_days=horizon, holdout=calibration.holdout, periods=calibration.periods,
            min_fit_dates=1,
        )  # fmt: skip
        if not fits:
            raise NotEnoughHistoryError(
                f"the cut {fold.cut.date()} has too little labelled history before it for the "
                f"{calibration.periods}-date calibration hold-out: ask for fewer --cuts "
                f"(the first of {cuts} cuts is the earliest)"
            )
    return folds


def evaluate_target(
    frame: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    rules: RulesConfig,
    cuts: int,
    overrides: Mapping[str, Any] | None = None,
    oracle: pd.DataFrame | None = None,
    resamples: int = 500,
    seed: int = 0,
    progress: Progress | None = None,
) -> TargetEvaluation:
    """Backtest at the quarter-start cuts, then the metrics with their intervals."""
    say = progress or (lambda _msg: None)
    rows = labelled_rows(frame)
    folds = evaluation_folds(rows, config, cuts=cuts)
    backtest = run_backtest(
        rows, target=target, config=config, rules=rules, overrides=overrides, oracle=oracle,
        progress=say, folds=folds,
    )  # fmt: skip
    say(f"{target}: {resamples} account bootstrap resamples")
    table = interval_table(
        backtest.predictions, target=target, evaluation=config.evaluation,
        resamples=resamples, seed=seed,
    )  # fmt: skip
    notes = complexity_notes(
        rows, folds, target=target, config=config, tuned=bool(overrides),
        chosen=backtest.complexity,
    )  # fmt: skip
    cut_dates = {str(f.index): str(f.cut.date()) for f in folds}
    table.insert(2, "cut", table["group"].map(cut_dates).where(table["scope"] == "cut", ""))
    notes += signal_notes(table, target)
    return TargetEvaluation(
        target, tuple(folds), backtest.predictions, table, tuple(notes), dict(overrides or {})
    )


def complexity_notes(
    rows: pd.DataFrame,
    folds: list[Fold],
    *,
    target: Target,
    config: ExperimentConfig,
    tuned: bool = False,
    chosen: Sequence[Mapping[str, Any] | None] = (),
) -> list[str]:
    """Per cut: the positives the booster learns from and the complexity that gives
    (`chosen`: the backtest's per-fold choice of booster.complexity cross_validated)."""
    from training.fit import holdout_split, target_labels
    from training.lightgbm_fit import complexity_for

    rule = config.booster.complexity
    notes = []
    for index, fold in enumerate(folds):
        train = rows.iloc[fold.train].reset_index(drop=True)
        fit_pos, _ = holdout_split(train, config=config)
        positives = int(target_labels(train.iloc[fit_pos], target).sum())
        head = f"cut {fold.cut.date()}: {positives} positive labels in the booster's rows -> "
        if tuned:
            notes.append(head + f"the tuned parameters (booster.complexity {rule} not applied)")
            continue
        if rule == "by_positives":
            steps = complexity_for(positives)
            what = ", ".join(f"{k} {v}" for k, v in steps.items()) or "the experiment's params"
        elif rule == "cross_validated":
            choice = chosen[index] if index < len(chosen) else None
            what = (
                ComplexityChoice.from_dict(dict(choice)).reason()
                if choice
                else "the experiment's params (too few accounts or labels to cross-validate)"
            )
        else:
            what = "the experiment's params"
        notes.append(head + f"{what} (booster.complexity {rule})")
    return notes


@dataclass(frozen=True)
class _Part:
    """One (scope, scorer) precomputed for the resamples: rows, order, review lists."""

    label: str
    rows: np.ndarray
    labels: np.ndarray
    probs: np.ndarray | None
    ranked: Ranked
    early: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # first rows, caught, ARR


def interval_table(
    predictions: pd.DataFrame,
    *,
    target: Target,
    evaluation: EvaluationConfig,
    resamples: int,
    seed: int,
    level: float = DEFAULT_LEVEL,
) -> pd.DataFrame:
    """Every metric per (pooled | cut, scorer), paired differences and, for churn, each health
    category's ROC-AUC (scope "category"), with account-bootstrap intervals."""
    preds = predictions.reset_index(drop=True)
    y = preds["label"].to_numpy(dtype=float)
    scopes: list[tuple[str, str, np.ndarray]] = [("pooled", "all", np.arange(len(preds)))]
    scopes += [
        ("cut", str(k), np.flatnonzero(preds["fold"].to_numpy() == k))
        for k in sorted(preds["fold"].unique())
    ]
    parts: list[_Part] = []
    for scope, group, idx in scopes:
        for scorer in SCORERS:
            part = _part(preds.iloc[idx], idx, y, scorer=scorer, target=target,
                         evaluation=evaluation, label=f"{scope}|{group}|{scorer}")  # fmt: skip
            if part is not None:
                parts.append(part)
    categories = [c for c in preds.columns if c.startswith(CATEGORY_PREFIX)]
    for column in categories:
        idx = np.flatnonzero(preds[column].notna().to_numpy())
        if len(idx):
            score = preds[column].to_numpy(dtype=float)[idx]
            label = f"category|all|{column.removeprefix(CATEGORY_PREFIX)}"
            parts.append(_Part(label, idx, y[idx], None, Ranked.of(score), None))

    def statistic(weights: np.ndarray) -> dict[str, float]:
        out: dict[str, float] = {}
        for part in parts:
            out |= _part_metrics(part, weights, bins=evaluation.ece_bins)
        for a, b in PAIRS:
            for metric in ("roc_auc", "brier", "early_arr_share"):
                first, second = (
                    out.get(f"pooled|all|{a}|{metric}"),
                    out.get(f"pooled|all|{b}|{metric}"),
                )
                if first is not None and second is not None:
                    out[f"pooled|all|{a}-{b}|{metric}"] = first - second
        return out

    intervals = account_bootstrap(
        preds["account_id"], statistic, resamples=resamples, seed=seed, level=level
    )
    return interval_frame(intervals, columns=COLUMNS)


def _part(
    rows: pd.DataFrame,
    idx: np.ndarray,
    y: np.ndarray,
    *,
    scorer: str,
    target: Target,
    evaluation: EvaluationConfig,
    label: str,
) -> _Part | None:
    prob_col = f"p_{scorer}"
    if prob_col not in rows:
        return None
    keep = rows[prob_col].notna().to_numpy()
    rows, idx = rows[keep], idx[keep]
    if rows.empty:
        return None
    probs = rows[prob_col].to_numpy(dtype=float)
    rank_col = f"r_{scorer}"
    rank = rows[rank_col].to_numpy(dtype=float) if rank_col in rows else probs
    early = None
    if target == "churn" and "churn_at" in rows:
        flags = flagged_high_risk(
            rows["as_of"],
            rank if evaluation.high_risk_threshold is None else probs,
            share=evaluation.high_risk_share,
            threshold=evaluation.high_risk_threshold,
        )
        early = _early_warning(rows, flags, lead_days=evaluation.lead_days, positions=idx)
    return _Part(label, idx, y[idx], probs, Ranked.of(rank), early)


def _early_warning(
    rows: pd.DataFrame, flags: np.ndarray, *, lead_days: int, positions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per churned account with a row >= `lead_days` before its churn: a row position (for
    its bootstrap weight), whether such an early row was flagged, and its ARR at risk (the
    ARR of its latest early row)."""
    frame = rows.assign(_flag=flags, _pos=positions).reset_index(drop=True)
    churn_at = frame.groupby("account_id")["churn_at"].transform("min")
    early = frame[frame["as_of"] <= churn_at - pd.Timedelta(days=lead_days)]
    if early.empty:
        return np.array([], dtype=int), np.array([], dtype=bool), np.array([], dtype=float)
    early = early.sort_values(["account_id", "as_of"], kind="stable")
    grouped = early.groupby("account_id", sort=True)
    caught = grouped["_flag"].any().to_numpy(dtype=bool)
    first = grouped["_pos"].first().to_numpy(dtype=int)
    arr = (
        grouped["arr"].last().fillna(0.0).to_numpy(dtype=float)
        if "arr" in early
        else np.ones(len(caught))
    )
    return first, caught, arr


def _part_metrics(part: _Part, weights: np.ndarray, *, bins: int) -> dict[str, float]:
    w = weights[part.rows]
    y = part.labels
    out = {"roc_auc": roc_auc(y, part.ranked, w)}
    if part.probs is not None:
        p = part.probs
        out |= {
            "pr_auc": pr_auc(y, part.ranked, w),
            "brier": brier(y, p, w) if w.sum() > 0 else float("nan"),
            "ece": ece(y, p, w, bins=bins),
            "citl": calibration_in_the_large(y, p, w) if w.sum() > 0 else float("nan"),
        }
        for budget in BUDGETS:
            out[f"recall_at_{round(budget * 100)}"] = recall_at_budget(
                y, part.ranked, w, budget=budget
            )
    if part.early is not None:
        first, caught, arr = part.early
        account_w = weights[first]
        at_risk = (account_w * arr).sum()
        counted = account_w.sum()
        out["early_arr_share"] = (
            float((account_w * arr * caught).sum() / at_risk) if at_risk > 0 else float("nan")
        )
        out["early_account_share"] = (
            float((account_w * caught).sum() / counted) if counted > 0 else float("nan")
        )
    return {f"{part.label}|{name}": value for name, value in out.items()}


def signal_notes(table: pd.DataFrame, target: Target) -> list[str]:
    """Plain sentences: a health category or the whole health score without signal."""
    if target != "churn":
        return []
    notes: list[str] = []
    auc = table[table["metric"] == "roc_auc"]
    for _, row in auc[auc["scope"] == "category"].iterrows():
        verdict = _chance_verdict(row)
        if verdict:
            notes.append(f"health category {row['scorer']}: {verdict}")
    health = auc[(auc["scope"] == "pooled") & (auc["scorer"] == "rules")]
    for _, row in health.iterrows():
        verdict = _chance_verdict(row)
        if verdict:
            notes.append(
                f"the health score (rules) {verdict}: its churn probabilities are no better "
                "than the base rate, so a rules-only fallback would serve noise"
            )
    return notes


def _chance_verdict(row: pd.Series) -> str:
    lo, hi, value = row["low"], row["high"], row["value"]
    if pd.isna(lo) or pd.isna(hi):
        return ""
    if hi < 0.5:
        return f"ranks churn backwards (ROC-AUC {value:.3f}, interval {lo:.3f}-{hi:.3f})"
    if lo <= 0.5:
        return f"carries no signal (ROC-AUC {value:.3f}, interval {lo:.3f}-{hi:.3f} covers 0.5)"
    return ""


@dataclass(frozen=True)
class EvaluationRun:
    """`nrr evaluate`'s answer: per target its evaluation (or why it was skipped)."""

    run_id: str | None
    evaluations: dict[str, TargetEvaluation]
    skipped: dict[str, str]
    history: str

    def table(self) -> pd.DataFrame:
        """Every target's interval table, one frame (target first)."""
        frames = [e.table.assign(target=t) for t, e in self.evaluations.items()]
        if not frames:
            return pd.DataFrame()
        table = pd.concat(frames, ignore_index=True)
        return table[["target", *[c for c in table.columns if c != "target"]]]


def run_evaluation(
    snapshots: pd.DataFrame,
    *,
    config: ExperimentConfig,
    rules: RulesConfig,
    cuts: int,
    oracle: pd.DataFrame | None = None,
    resamples: int = 500,
    seed: int = 0,
    progress: Progress | None = None,
    log: Callable[[EvaluationRun, ExperimentConfig], str] | None = None,
) -> EvaluationRun:
    """Every target of the experiment evaluated at `cuts` quarter starts.

    The experiment's recipe is first fitted to the history (`plan_history`, as `nrr train`
    does: e.g. calibration on held-out accounts when dates are few); tuning, when on, uses
    the rows whose labels closed before the first cut. `log` (e.g. `log_to_mlflow`) records
    the run and returns its id.
    """
    from training.history import plan_history
    from training.pipeline import count_positives

    say = progress or (lambda _msg: None)
    plan = plan_history(snapshots, config)
    config = plan.config
    rows = labelled_rows(snapshots)
    folds = evaluation_folds(rows, config, cuts=cuts)
    say(f"{len(folds)} cuts at quarter starts: " + ", ".join(str(f.cut.date()) for f in folds))
    evaluations: dict[str, TargetEvaluation] = {}
    skipped: dict[str, str] = {}
    for target in config.targets:
        positives = count_positives(rows, target)
        if positives < config.min_positives:
            skipped[target] = (
                f"only {positives} positive labels (< min_positives {config.min_positives})"
            )
            say(f"{target}: skipped, {skipped[target]}")
            continue
        overrides = _tuned_before(rows, folds[0].cut, target=target, config=config, say=say)
        evaluations[target] = evaluate_target(
            rows, target=target, config=config, rules=rules, cuts=cuts, overrides=overrides,
            oracle=oracle, resamples=resamples, seed=seed, progress=say,
        )  # fmt: skip
    result = EvaluationRun(None, evaluations, skipped, plan.describe())
    if log is not None:
        result = EvaluationRun(log(result, config), evaluations, skipped, plan.describe())
    return result


def _tuned_before(
    rows: pd.DataFrame, cut: pd.Timestamp, *, target: Target, config: ExperimentConfig,
    say: Progress,
) -> dict[str, Any]:  # fmt: skip
    """The experiment's search on rows whose labels closed before `cut` (none when off)."""
    from training.tune import tune

    if config.tuning.trials == 0 or not config.tuning.search_space:
        return {}
    closed = rows["as_of"] + pd.Timedelta(days=config.snapshot.horizon_days) <= cut
    early = rows[closed].reset_index(drop=True)
    say(f"{target}: tuning on {len(early)} rows before {cut.date()}")
    try:
        return tune(early, target=target, config=config)
    except (NotEnoughHistoryError, ValueError) as exc:
        say(f"{target}: tuning skipped ({exc}); the experiment's parameters are used")
        return {}


def log_to_mlflow(result: EvaluationRun, config: ExperimentConfig, *, settings: Any) -> str:
    """One MLflow run: metrics (value, _low, _high), the tables as CSV, figures, notes."""
    import tempfile
    from pathlib import Path

    import mlflow

    from models.workspace import setup_tracking
    from training.plots import calibration_figure, cut_interval_figure, write_figures

    experiment_id = setup_tracking(settings)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"evaluate-{config.name}") as run:
        mlflow.set_tags({"kind": "evaluate", "experiment": config.name, "history": result.history})
        mlflow.log_dict(config.model_dump(mode="json"), "experiment.json")
        flat: dict[str, float] = {}
        for target, evaluation in result.evaluations.items():
            for _, row in evaluation.table.iterrows():
                where = "pooled" if row["scope"] == "pooled" else f"{row['scope']}{row['group']}"
                key = f"{target}.{where}.{row['scorer']}.{row['metric']}".replace("-", "_minus_")
                for suffix, column in (("", "value"), ("_low", "low"), ("_high", "high")):
                    if pd.notna(row[column]):
                        flat[key + suffix] = float(row[column])
        mlflow.log_metrics(flat)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            write_outputs(result, folder)
            for target, evaluation in result.evaluations.items():
                figures = {
                    f"{target}_cuts": cut_interval_figure(
                        evaluation.table, metrics=("roc_auc", "citl")
                    ),
                    f"{target}_calibration": calibration_figure(
                        evaluation.predictions, bins=config.evaluation.ece_bins
                    ),
                }
                write_figures(figures, folder)
            mlflow.log_artifacts(str(folder), artifact_path="evaluation")
        return str(run.info.run_id)


def write_outputs(result: EvaluationRun, folder: Any) -> list[Any]:
    """evaluation.csv (every value with its interval), predictions_<target>.csv, notes.txt."""
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "evaluation.csv"]
    result.table().to_csv(paths[0], index=False)
    for target, evaluation in result.evaluations.items():
        path = folder / f"predictions_{target}.csv"
        evaluation.predictions.to_csv(path, index=False)
        paths.append(path)
    notes = [f"history: {result.history}"]
    notes += [f"{t}: skipped, {why}" for t, why in result.skipped.items()]
    notes += [f"{t}: {n}" for t, e in result.evaluations.items() for n in e.notes]
    (folder / "notes.txt").write_text("\n".join(notes) + "\n")
    paths.append(folder / "notes.txt")
    return paths


# The text report's two blocks: (metric, header) of ranking and of probability quality.
_TEXT_BLOCKS = (
    (("roc_auc", "ROC-AUC"), ("pr_auc", "PR-AUC"), ("recall_at_10", "recall@10%"),
     ("recall_at_20", "recall@20%"), ("early_arr_share", "churned ARR flagged 30d+")),
    (("brier", "Brier"), ("ece", "ECE"), ("citl", "mean pred - observed")),
)  # fmt: skip


def _cell(row: pd.Series | None) -> str:
    if row is None or pd.isna(row["value"]):
        return "-"
    if pd.isna(row["low"]):
        return f"{row['value']:.3f}"
    return f"{row['value']:.3f} ({row['low']:.3f} to {row['high']:.3f})"


def evaluation_text(result: EvaluationRun) -> str:
    """The readable report: per target, pooled then per cut, value (95% interval)."""
    lines = [f"history: {result.history}"]
    if result.run_id:
        lines.append(f"MLflow run {result.run_id}")
    for target, why in result.skipped.items():
        lines.append(f"{target}: skipped, {why}")
    for target, evaluation in result.evaluations.items():
        table = evaluation.table
        index = {(r["scope"], r["group"], r["scorer"], r["metric"]): r for _, r in table.iterrows()}
        scopes = [("pooled", "all", "pooled")] + [
            ("cut", str(f.index), f"cut {f.cut.date()}") for f in evaluation.folds
        ]
        lines.append("")
        lines.append(
            f"{target}: {len(evaluation.predictions)} scored rows, "
            f"{int(evaluation.predictions['label'].sum())} positive; value (95% account "
            "bootstrap interval)"
        )
        if evaluation.overrides:
            lines.append(f"  tuned parameters: {evaluation.overrides}")
        for block in _TEXT_BLOCKS:
            headers = ["", "scorer", *(h for _, h in block)]
            body: list[list[str]] = []
            for scope, group, name in scopes:
                for scorer in (*SCORERS, *(f"{a}-{b}" for a, b in PAIRS)):
                    cells = [_cell(index.get((scope, group, scorer, m))) for m, _ in block]
                    if all(c == "-" for c in cells):
                        continue
                    body.append([name, scorer, *cells])
                    name = ""
            # A column without any value (early warning for expansion) is left out.
            keep = [0, 1] + [i for i in range(2, len(headers)) if any(r[i] != "-" for r in body)]
            headers = [headers[i] for i in keep]
            body = [[r[i] for i in keep] for r in body]
            widths = [max(len(r[i]) for r in [headers, *body]) for i in range(len(headers))]
            lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
            for r in body:
                lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
            lines.append("")
        categories = table[(table["scope"] == "category") & (table["metric"] == "roc_auc")]
        if len(categories):
            lines.append("  health categories, churn ROC-AUC of each sub-score:")
            for _, row in categories.iterrows():
                lines.append(f"    {row['scorer']:<12} {_cell(row)}")
        for note in evaluation.notes:
            lines.append(f"  note: {note}")
    return "\n".join(lines)
