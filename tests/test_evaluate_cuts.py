"""`nrr evaluate`: quarter-start cuts, what each cut may train on, and the reported numbers
recomputed here from the out-of-time predictions by other means (sklearn, pandas loops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from training_factories import make_snapshots
from typer.testing import CliRunner

from experiments import FAST_EXPERIMENT
from models.rules.config import load_rules_config
from nrr.cli import build_app
from training.config import ExperimentConfig, load_experiment
from training.evaluate import labelled_rows
from training.evaluate_cuts import evaluate_target, evaluation_text, run_evaluation, signal_notes
from training.folds import Fold, NotEnoughHistoryError, folds_at, quarter_cuts

HORIZON = 90


def _dates(start: str, periods: int, freq: str = "MS") -> pd.Series:
    return pd.Series(pd.date_range(start, periods=periods, freq=freq))


def test_quarter_cuts_are_the_last_quarter_starts_with_history_before_them() -> None:
    as_of = _dates("2024-02-01", 20)  # 2024-02 .. 2025-09
    cuts = quarter_cuts(as_of, pd.Series(True, index=as_of.index), cuts=3, horizon_days=HORIZON)
    assert cuts == [pd.Timestamp(d) for d in ("2025-01-01", "2025-04-01", "2025-07-01")]
    # Weekly snapshots: the first Monday of each quarter.
    weekly = _dates("2024-01-01", 80, freq="W-MON")
    got = quarter_cuts(weekly, pd.Series(True, index=weekly.index), cuts=2, horizon_days=HORIZON)
    assert got == [pd.Timestamp("2025-04-07"), pd.Timestamp("2025-07-07")]


def test_too_few_quarters_is_a_clear_error() -> None:
    as_of = _dates("2024-02-01", 8)  # 2024-02 .. 2024-09: quarter starts 04, 07 -> only 07 usable
    with pytest.raises(NotEnoughHistoryError, match="2 quarter-start cuts need"):
        quarter_cuts(as_of, pd.Series(True, index=as_of.index), cuts=2, horizon_days=HORIZON)


def test_each_cut_trains_only_on_labels_closed_by_then() -> None:
    as_of = pd.Series(np.repeat(pd.date_range("2024-01-01", periods=12, freq="MS"), 2))
    labelled = pd.Series(True, index=as_of.index)
    cuts = [pd.Timestamp("2024-07-01"), pd.Timestamp("2024-10-01")]
    folds = folds_at(as_of, labelled, cuts=cuts, horizon_days=HORIZON)
    for fold, end in zip(folds, [cuts[1], None], strict=True):
        train, test = as_of.iloc[fold.train], as_of.iloc[fold.test]
        assert (train + pd.Timedelta(days=HORIZON) <= fold.cut).all()
        # Every row whose label closed by the cut is used.
        assert len(train) == int((as_of + pd.Timedelta(days=HORIZON) <= fold.cut).sum())
        assert (test >= fold.cut).all() and (end is None or (test < end).all())
    assert sorted(as_of.iloc[folds[0].test].unique()) == list(
        pd.date_range("2024-07-01", periods=3, freq="MS")
    )


@pytest.fixture(scope="module")
def company() -> pd.DataFrame:
    return make_snapshots(n_accounts=260, months=27, seed=4)


@pytest.fixture(scope="module")
def churn(company: pd.DataFrame):  # type: ignore[no-untyped-def]
    config = load_experiment(FAST_EXPERIMENT)
    return evaluate_target(
        company, target="churn", config=config, rules=load_rules_config(), cuts=2,
        resamples=60, seed=1,
    )  # fmt: skip


def _value(table: pd.DataFrame, scope: str, group: str, scorer: str, metric: str) -> pd.Series:
    sel = table[
        (table["scope"] == scope) & (table["group"] == group) & (table["scorer"] == scorer)
        & (table["metric"] == metric)
    ]  # fmt: skip
    assert len(sel) == 1, (scope, group, scorer, metric)
    return sel.iloc[0]


def test_reported_metrics_equal_an_independent_computation(churn) -> None:  # type: ignore[no-untyped-def]
    preds, table = churn.predictions, churn.table
    assert [f.cut.quarter for f in churn.folds] and all(f.cut.day == 1 for f in churn.folds)
    y = preds["label"].to_numpy()
    row = _value(table, "pooled", "all", "model", "roc_auc")
    assert row["value"] == pytest.approx(roc_auc_score(y, preds["p_model"]), abs=1e-12)
    assert row["low"] < row["value"] < row["high"]
    rules = _value(table, "pooled", "all", "rules", "roc_auc")["value"]
    assert rules == pytest.approx(roc_auc_score(y, preds["r_rules"]), abs=1e-12)
    citl = _value(table, "pooled", "all", "logistic", "citl")["value"]
    assert citl == pytest.approx(preds["p_logistic"].mean() - y.mean(), abs=1e-12)
    for k, fold in enumerate(churn.folds):
        part = preds[preds["fold"] == k]
        got = _value(table, "cut", str(k), "model", "brier")
        assert got["value"] == pytest.approx(((part["p_model"] - part["label"]) ** 2).mean())
        assert got["cut"] == str(fold.cut.date())
    diff = _value(table, "pooled", "all", "model-logistic", "roc_auc")["value"]
    assert diff == pytest.approx(
        roc_auc_score(y, preds["p_model"]) - roc_auc_score(y, preds["p_logistic"])
    )


def test_early_warning_share_of_churned_arr(churn) -> None:  # type: ignore[no-untyped-def]
    preds = churn.predictions
    # Review list: the top 20% of each snapshot date by the model, as the CS team gets it.
    flagged = preds.groupby("as_of")["p_model"].transform(
        lambda s: s.rank(method="first", ascending=False) <= np.ceil(0.2 * len(s))
    )
    caught_arr = at_risk = 0.0
    for _, rows in preds.groupby("account_id"):
        churn_at = rows["churn_at"].min()
        if pd.isna(churn_at):
            continue
        early = rows[rows["as_of"] <= churn_at - pd.Timedelta(days=30)].sort_values("as_of")
        if early.empty:
            continue
        arr = early["arr"].iloc[-1]
        at_risk += arr
        caught_arr += arr * bool(flagged[early.index].any())
    got = _value(churn.table, "pooled", "all", "model", "early_arr_share")["value"]
    assert at_risk > 0
    assert got == pytest.approx(caught_arr / at_risk)


def test_health_categories_are_scored_and_chance_is_said(churn) -> None:  # type: ignore[no-untyped-def]
    cats = churn.table[churn.table["scope"] == "category"]
    assert set(cats["scorer"]) <= {"adoption", "engagement", "support", "commercial"}
    assert len(cats) >= 1
    table = pd.DataFrame(
        [
            {"scope": "category", "group": "all", "scorer": "support", "metric": "roc_auc",
             "value": 0.51, "low": 0.47, "high": 0.55},
            {"scope": "category", "group": "all", "scorer": "adoption", "metric": "roc_auc",
             "value": 0.70, "low": 0.66, "high": 0.74},
            {"scope": "pooled", "group": "all", "scorer": "rules", "metric": "roc_auc",
             "value": 0.46, "low": 0.42, "high": 0.49},
        ]
    )  # fmt: skip
    notes = signal_notes(table, "churn")
    assert len(notes) == 2
    assert "support: carries no signal" in notes[0]
    assert "health score (rules) ranks churn backwards" in notes[1]


def test_run_and_cli_write_tables_and_an_mlflow_run(company: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "snap.parquet"
    company.to_parquet(path)
    out = tmp_path / "eval"
    result = CliRunner().invoke(
        build_app(),
        ["evaluate", "--snapshots", str(path), "--cuts", "2", "--experiment",
         str(FAST_EXPERIMENT), "--resamples", "20", "--out", str(out),
         "--workdir", str(tmp_path / "wd")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "churned ARR flagged 30d+" in result.output and "pooled" in result.output
    table = pd.read_csv(out / "evaluation.csv")
    assert {"churn", "expansion"} == set(table["target"])
    assert {"model", "logistic", "rules"} <= set(table["scorer"])
    assert (out / "predictions_churn.csv").is_file() and (out / "notes.txt").is_file()
    assert (tmp_path / "wd" / "mlflow.db").is_file()


def test_a_target_with_too_few_positives_is_skipped_and_said(company: pd.DataFrame) -> None:
    config = load_experiment(FAST_EXPERIMENT).model_copy(
        update={"min_positives": 10_000, "targets": ["churn"]}
    )
    result = run_evaluation(labelled_rows(company), config=config, rules=load_rules_config(), cuts=2, resamples=5)  # fmt: skip
    assert not result.evaluations and "min_positives" in result.skipped["churn"]
    assert "churn: skipped" in evaluation_text(result)


def _notes_case(rule: str) -> tuple[pd.DataFrame, ExperimentConfig, list[Fold]]:
    """A small company's rows, the fast experiment with booster.complexity `rule`, 2 cuts."""
    from training.evaluate_cuts import evaluation_folds

    rows = labelled_rows(make_snapshots(n_accounts=200, months=24, seed=5))
    config = load_experiment(FAST_EXPERIMENT)
    config = config.model_copy(
        update={"booster": config.booster.model_copy(update={"complexity": rule})}
    )
    return rows, config, evaluation_folds(rows, config, cuts=2)


def test_complexity_notes_name_what_the_positives_give() -> None:
    from training.evaluate_cuts import complexity_notes
    from training.fit import holdout_split, target_labels
    from training.lightgbm_fit import complexity_for

    rows, config, folds = _notes_case("by_positives")
    notes = complexity_notes(rows, folds, target="churn", config=config)
    tuned = complexity_notes(rows, folds, target="churn", config=config, tuned=True)
    for fold, note, tuned_note in zip(folds, notes, tuned, strict=True):
        train = rows.iloc[fold.train].reset_index(drop=True)
        fit, _ = holdout_split(train, config=config)
        positives = int(target_labels(train.iloc[fit], "churn").sum())
        assert note.startswith(f"cut {fold.cut.date()}: {positives} positive labels")
        leaves = complexity_for(positives)["num_leaves"]
        assert f"num_leaves {leaves}," in note
        assert "the tuned parameters" in tuned_note and "num_leaves" not in tuned_note


def test_cross_validated_notes_name_each_cuts_choice_from_the_backtest() -> None:
    from training.evaluate_cuts import complexity_notes

    rows, config, folds = _notes_case("cross_validated")
    chosen = [
        {"chosen": "3 leaves", "params": {"num_leaves": 3}, "folds": 5, "positives": 40,
         "losses": {"2 leaves": 0.2512, "3 leaves": 0.2401}},
        None,
    ]  # fmt: skip
    first, second = complexity_notes(rows, folds, target="churn", config=config, chosen=chosen)
    assert "-> 3 leaves: lowest log loss over 5 account-grouped folds" in first
    assert "2 leaves 0.2512, 3 leaves 0.2401" in first
    assert "too few accounts or labels to cross-validate" in second
