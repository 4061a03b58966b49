"""Train, backtest, log, register and gate the churn and expansion models."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.definition import METADATA_KEY as DEFINITION_KEY
from features.definition import FeatureDefinition
from features.registry import LABEL_COLUMNS
from models.monitoring.drift import REFERENCE_FILE, fit_reference, with_seasonal
from models.rules.config import RulesConfig, load_rules_config
from models.rules.health import HealthNormaliser
from models.scoring.booster import ScoringModel
from models.workspace import Workspace, setup_tracking
from training.baselines import RuleBaseline
from training.complexity import ComplexityChoice
from training.config import REGISTERED_NAME, ExperimentConfig, Target
from training.evaluate import (
    RECIPE_COLUMN,
    BacktestResult,
    choose_recipe,
    labelled_rows,
    pooled,
    run_backtest,
)
from training.fit import Recipe, fit_recipe, target_labels
from training.history import HistoryPlan, plan_history, tuning_rows
from training.registry import (
    CHALLENGER,
    GateDecision,
    champion_version,
    decide,
    gate_scores,
    load_version,
    register_scores_model,
    set_champion,
)
from training.tracking import (
    folder_fingerprint,
    frame_fingerprint,
    git_commit,
    package_versions,
)

Progress = Callable[[str], None]
REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class TargetOutcome:
    """What happened to one target: registered (with gate decision) or skipped (why)."""

    target: Target
    registered: bool
    message: str
    version: str | None = None
    model_uri: str | None = None
    decision: GateDecision | None = None
    pooled: dict[str, dict[str, float]] = field(default_factory=dict)
    # Which recipe the registered version holds: "lightgbm" or "logistic".
    recipe: str | None = None


@dataclass(frozen=True)
class TrainResult:
    """The MLflow run, the registered model URIs per target, and flat pooled metrics."""

    run_id: str
    model_uris: dict[str, str]
    metrics: dict[str, float]
    outcomes: dict[str, TargetOutcome] = field(default_factory=dict)


def as_of_view(snapshots: pd.DataFrame, *, as_of: pd.Timestamp, horizon_days: int) -> pd.DataFrame:
    """Snapshots as known on `as_of`: later rows dropped, labels not yet closed unlabelled."""
    rows = snapshots[snapshots["as_of"] <= as_of].copy()
    # A label is known on as_of only when its whole window has passed.
    known = rows["labelled"].astype(bool) & (
        rows["as_of"] + pd.Timedelta(days=horizon_days) <= as_of
    )
    label_columns = [c for c in LABEL_COLUMNS if c != "labelled" and c in rows.columns]
    out = rows.assign(**{c: rows[c].where(known) for c in label_columns})
    return out.assign(labelled=known.to_numpy(dtype=bool)).reset_index(drop=True)


def count_positives(frame: pd.DataFrame, target: Target) -> int:
    """Positive labels of a target among labelled rows."""
    return int(target_labels(labelled_rows(frame), target).sum())


def train(
    *,
    snapshots: pd.DataFrame,
    config: ExperimentConfig,
    settings: Workspace,
    rules: RulesConfig | None = None,
    oracle: pd.DataFrame | None = None,
    data_dir: Path | None = None,
    progress: Progress | None = None,
    plan: HistoryPlan | None = None,
    definition: FeatureDefinition | None = None,
) -> TrainResult:
    """One MLflow run training, backtesting and registering every target of the experiment.

    The recipe is first fitted to the history (`training.history.plan_history`); a history
    below the minimum raises NotEnoughHistoryError before any store, run or file is created.
    """
    import mlflow

    plan = plan or plan_history(snapshots, config)
    config = plan.config
    definition = definition or FeatureDefinition(config.snapshot)
    rules = rules or load_rules_config()
    experiment_id = setup_tracking(settings)
    say = progress or (lambda _msg: None)
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"train-{config.name}") as run:
        _log_provenance(snapshots, config=config, data_dir=data_dir)
        mlflow.log_dict(plan.to_dict(), "history_plan.json")
        mlflow.set_tag("history", plan.describe())
        outcomes: dict[str, TargetOutcome] = {}
        for target in config.targets:
            outcomes[target] = _train_target(
                snapshots, target=target, config=config, rules=rules, oracle=oracle,
                settings=settings, run_id=run.info.run_id, say=say, definition=definition,
            )  # fmt: skip
        metrics = {
            f"{t}.{scorer}.{name}": value
            for t, o in outcomes.items()
            for scorer, row in o.pooled.items()
            for name, value in row.items()
        }
        summary = {
            t: {"registered": o.registered, "message": o.message} for t, o in outcomes.items()
        }
        mlflow.log_dict(summary, "summary.json")
    uris = {t: o.model_uri for t, o in outcomes.items() if o.model_uri is not None}
    return TrainResult(run.info.run_id, uris, metrics, outcomes)


def _log_provenance(
    snapshots: pd.DataFrame, *, config: ExperimentConfig, data_dir: Path | None
) -> None:
    import mlflow

    mlflow.log_dict(config.model_dump(mode="json"), "experiment.json")
    fingerprint: dict[str, Any] = {
        "snapshots.sha256": frame_fingerprint(snapshots),
        "snapshots.rows": len(snapshots),
        "snapshots.labelled_rows": int(snapshots["labelled"].sum()),
        "snapshots.as_of_min": str(snapshots["as_of"].min()),
        "snapshots.as_of_max": str(snapshots["as_of"].max()),
    }
    if data_dir is not None:
        fingerprint |= folder_fingerprint(data_dir)
    mlflow.log_dict(fingerprint, "data_fingerprint.json")
    mlflow.log_dict(package_versions(), "package_versions.json")
    tags = {"experiment": config.name, "snapshots.sha256": fingerprint["snapshots.sha256"]}
    if (commit := git_commit(REPO)) is not None:
        tags["git_commit"] = commit
    mlflow.set_tags(tags)
    mlflow.log_params({"seed": config.seed, "horizon_days": config.snapshot.horizon_days})


def _train_target(
    snapshots: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    rules: RulesConfig,
    oracle: pd.DataFrame | None,
    settings: Workspace,
    run_id: str,
    say: Progress,
    definition: FeatureDefinition,
) -> TargetOutcome:
    positives = count_positives(snapshots, target)
    if positives < config.min_positives:
        message = (
            f"{target}: only {positives} positive labels (< min_positives {config.min_positives}); "
            "too little data, no model registered"
        )
        say(message)
        return TargetOutcome(target, False, message)
    rows = labelled_rows(snapshots)
    overrides = _tuned(
        rows, target=target, config=config, settings=settings, run_id=run_id, say=say
    )
    say(f"{target}: backtest")
    backtest = run_backtest(
        rows,
        target=target,
        config=config,
        rules=rules,
        overrides=overrides,
        oracle=oracle,
        progress=say,
    )
    selection = choose_recipe(pooled(backtest.metrics))
    say(f"{target}: final model: {selection['reason']}")
    model = fit_recipe(
        rows, recipe=selection["recipe"], target=target, config=config, overrides=overrides
    )
    # Scoring must rebuild features exactly as here: the definition travels with the model.
    extra = {DEFINITION_KEY: definition.to_dict(), "selection": selection}
    model = replace(model, metadata={**model.metadata, **extra})
    return _log_and_register(
        rows, model=model, backtest=backtest, config=config, rules=rules, say=say
    )


def _tuned(
    rows: pd.DataFrame,
    *,
    target: Target,
    config: ExperimentConfig,
    settings: Workspace,
    run_id: str,
    say: Progress,
) -> dict[str, Any]:
    import mlflow

    from training.tune import TuningSkipped, tune

    if config.tuning.trials == 0 or not config.tuning.search_space:
        return {}
    # Tuning sees only rows whose labels closed before the first backtest cut.
    early = tuning_rows(rows, config)

    def log_trial(number: int, params: dict[str, Any], value: float | None, state: str) -> None:
        with mlflow.start_run(run_name=f"{target}-trial-{number}", nested=True):
            mlflow.log_params(params)
            mlflow.set_tag("state", state)
            if value is not None:
                mlflow.log_metric("inner_log_loss", value)
        say(f"{target}: trial {number} {state}" + ("" if value is None else f" {value:.4f}"))

    try:
        best = tune(
            early.reset_index(drop=True), target=target, config=config,
            storage=settings.optuna_storage(), study_name=f"{run_id}-{target}",
            log_trial=log_trial,
        )  # fmt: skip
    except TuningSkipped as exc:
        say(f"{target}: tuning skipped ({exc}); the experiment's parameters are used")
        mlflow.set_tag(f"{target}.tuning_skipped", str(exc))
        return {}
    mlflow.log_params({f"{target}.{k}": v for k, v in best.items()})
    return best


def _log_and_register(
    rows: pd.DataFrame,
    *,
    model: ScoringModel,
    backtest: BacktestResult,
    config: ExperimentConfig,
    rules: RulesConfig,
    say: Progress,
) -> TargetOutcome:
    import mlflow
    from mlflow import MlflowClient

    target: Target = backtest.target
    name = REGISTERED_NAME[target]
    table = pooled(backtest.metrics)
    _log_metrics(backtest.metrics, target=target)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _write_artifacts(folder, rows=rows, model=model, backtest=backtest, rules=rules)
        _write_drift_reference(folder / "model", rows=rows, model=model, config=config)
        mlflow.log_artifacts(str(folder / "report"), artifact_path=target)
        # One registered version per target for both recipes: the scores pyfunc (models from
        # code) over the native files, so spark_udf("models:/nrr-churn@champion") gives
        # `nrr score`'s calibrated probability; serving reads the native files under it.
        version = register_scores_model(
            name, folder / "model", model=model, rules=rules, example=rows.tail(5)
        )
    client = MlflowClient()
    # Which recipe the version holds and why (both backtest ROC-AUCs), on version and run.
    selection = dict(model.metadata.get("selection") or {})
    tags = {"recipe": model.kind, "recipe_reason": str(selection.get("reason", ""))}
    tags |= {
        f"backtest.{key}": f"{selection[key]:.4f}"
        for key in ("lightgbm_roc_auc", "logistic_roc_auc")
        if selection.get(key) is not None
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    mlflow.set_tags(
        {f"{target}.recipe": model.kind, f"{target}.recipe_reason": tags["recipe_reason"]}
    )
    complexity = model.metadata.get("complexity")
    if complexity is not None:
        reason = ComplexityChoice.from_dict(complexity).reason()
        say(f"{target}: booster complexity: {reason}")
        mlflow.set_tag(f"{target}.complexity", reason)
    client.set_registered_model_alias(name, CHALLENGER, version)
    decision = _gate(
        client, name=name, version=version, backtest=backtest, rows=rows, config=config,
        column=RECIPE_COLUMN[model.kind],
    )  # fmt: skip
    mlflow.log_dict(decision.to_dict(), f"{target}/promotion.json")
    mlflow.set_tag(f"{target}.promotion", "promoted" if decision.promoted else "kept champion")
    say(
        f"{target}: version {version} {'-> champion' if decision.promoted else 'stays challenger'}: {decision.reason}"
    )
    records = {str(s): {k: float(v) for k, v in r.items()} for s, r in table.iterrows()}
    uri = f"models:/{name}/{version}"
    recipe = "logistic" if model.kind == "logistic" else "lightgbm"
    return TargetOutcome(target, True, decision.reason, version, uri, decision, records, recipe)


def _log_metrics(metrics: pd.DataFrame, *, target: Target) -> None:
    import mlflow

    flat: dict[str, float] = {}
    for _, row in metrics[metrics["scope"].isin(["pooled", "fold"])].iterrows():
        prefix = f"{target}.{row['scorer']}" + (
            "" if row["scope"] == "pooled" else f".fold{row['group']}"
        )
        for key, value in row.drop(["scope", "group", "scorer"]).items():
            if pd.notna(value):
                flat[f"{prefix}.{key}"] = float(value)
    mlflow.log_metrics(flat)


def _write_artifacts(
    folder: Path,
    *,
    rows: pd.DataFrame,
    model: ScoringModel,
    backtest: BacktestResult,
    rules: RulesConfig,
) -> None:
    from training.model_card import model_card
    from training.plots import (
        calibration_figure,
        lift_figure,
        roc_pr_figure,
        shap_figures,
        write_figures,
    )

    target = backtest.target
    report, model_dir = folder / "report", folder / "model"
    model.save(model_dir)
    labels = target_labels(rows, target)
    fallback = RuleBaseline.fit(rows, labels, target=target, rules=rules)
    normaliser = fallback.normaliser or HealthNormaliser.fit(rows, config=rules)
    (model_dir / "health_normaliser.json").write_text(json.dumps(normaliser.to_dict()))
    (model_dir / "fallback_calibration.json").write_text(json.dumps(fallback.calibration.to_dict()))
    report.mkdir(parents=True)
    backtest.metrics.to_csv(report / "backtest_metrics.csv", index=False)
    backtest.predictions.to_csv(report / "backtest_predictions.csv", index=False)
    sample = rows.sample(n=min(len(rows), 3000), random_state=0)
    figures = {
        "calibration": calibration_figure(backtest.predictions),
        "roc_pr": roc_pr_figure(backtest.predictions),
        "lift": lift_figure(backtest.predictions),
        **shap_figures(model, sample),
    }
    write_figures(figures, report / "plots")
    window = (str(rows["as_of"].min().date()), str(rows["as_of"].max().date()))
    card = model_card(
        model=model, metrics=backtest.metrics, decision="see promotion.json", data_window=window
    )
    (report / "model_card.md").write_text(card)


def _write_drift_reference(
    model_dir: Path, *, rows: pd.DataFrame, model: ScoringModel, config: ExperimentConfig
) -> None:
    """PSI bins of the final model's latest training rows, stored as JSON beside the model.

    Only the latest snapshot dates: a growing company's whole multi-year history differs from
    any one recent month (more seats, more ARR), so a reference over all of it would flag
    drift every quarter and teach users to ignore the check. Seasonality is not drift either:
    with `drift.same_month_last_year` the reference also holds the bins and shares of each
    calendar month of the training year before the latest training date, and a snapshot's
    PSI is the smaller of the two comparisons (models/monitoring/drift.py).
    """
    periods = config.drift.reference_periods
    recent = rows
    if periods:
        dates = np.sort(rows["as_of"].unique())[-periods:]
        recent = rows[rows["as_of"].isin(dates)]
    reference = fit_reference(
        recent, model.feature_names, bins=config.drift.bins, thresholds=config.drift.thresholds
    )
    meta = {
        "as_of_min": str(recent["as_of"].min().date()),
        "as_of_max": str(recent["as_of"].max().date()),
    }
    if config.drift.same_month_last_year:
        latest = rows["as_of"].max()
        year = rows[rows["as_of"] > latest - pd.DateOffset(years=1)]
        reference = with_seasonal(reference, year, bins=config.drift.bins)
        meta |= {
            "seasonal_as_of_min": str(year["as_of"].min().date()),
            "seasonal_as_of_max": str(year["as_of"].max().date()),
        }
    reference = replace(reference, meta=meta)
    (model_dir / REFERENCE_FILE).write_text(json.dumps(reference.to_dict()))


def _gate(
    client: Any,
    *,
    name: str,
    version: str,
    backtest: BacktestResult,
    rows: pd.DataFrame,
    config: ExperimentConfig,
    column: str = "p_model",
) -> GateDecision:
    """Compare the registered challenger (its recipe's backtest `column`) with the champion's
    recipe refitted on the same folds; move the champion alias when the challenger wins."""
    current = champion_version(client, name)
    preds = backtest.predictions
    y = preds["label"].to_numpy(dtype=float)
    auc, brier_score = gate_scores(y, preds[column].to_numpy(dtype=float))
    if current is None:
        decision = decide(
            challenger=(auc, brier_score), champion=None, config=config.promotion, rows=len(y)
        )
    else:
        champion = load_version(client, name, current)
        missing = [f for f in champion.feature_names if f not in rows.columns]
        if missing:
            reason = f"champion v{current} needs features absent from this data: {missing[:5]}"
            decision = GateDecision(True, reason, auc, brier_score, current, rows=len(y))
        else:
            scores = _champion_backtest(champion, rows=rows, target=backtest.target, config=config)
            gain_low = None
            if config.promotion.interval:
                from training.intervals import paired_auc_gain

                _, gain_low, _ = paired_auc_gain(
                    preds["account_id"], y, preds[column].to_numpy(dtype=float), scores,
                    resamples=config.promotion.interval_resamples, seed=config.seed,
                )  # fmt: skip
            decision = decide(
                challenger=(auc, brier_score), champion=gate_scores(y, scores), config=config.promotion,
                champion_version=current, rows=len(y), auc_gain_low=gain_low,
            )  # fmt: skip
    if decision.promoted:
        set_champion(client, name, version)
    return decision


def _champion_backtest(
    champion: ScoringModel, *, rows: pd.DataFrame, target: Target, config: ExperimentConfig
) -> np.ndarray:
    """The champion's recipe (LightGBM with its parameters, or the logistic regression, on
    its features) refitted on the challenger's folds.

    Scoring the champion artifact itself would flatter it on rows it was trained on and
    handicap it on rows after its training window; refitting both recipes on the same folds
    compares like with like.
    """
    from training.evaluate import recipe_predictions

    recipe: Recipe = "logistic" if champion.kind == "logistic" else "lightgbm"
    params = dict(champion.metadata.get("params", {})) if recipe == "lightgbm" else {}
    return recipe_predictions(
        rows, target=target, config=config, overrides=params,
        features=list(champion.feature_names), recipe=recipe,
    )  # fmt: skip
