"""The experiment file (experiments/*.yaml) as a typed, validated object."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from features.config import SnapshotConfig
from models.rules.config import validation_problems

Target = Literal["churn", "expansion"]
LABEL_OF: dict[str, str] = {"churn": "churned", "expansion": "expanded"}
REGISTERED_NAME: dict[str, str] = {"churn": "nrr-churn", "expansion": "nrr-expansion"}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BacktestConfig(_Frozen):
    folds: int = Field(default=3, ge=1, description="number of rolling-origin cut dates (K)")
    spacing: int = Field(default=3, ge=1, description="snapshot dates between consecutive cuts")


class CalibrationConfig(_Frozen):
    periods: int = Field(
        default=3, ge=1, description="latest snapshot dates of a training fold held out"
    )
    holdout: Literal["time", "accounts"] = Field(
        default="time",
        description="time: the latest dates calibrate; accounts: a share of accounts does "
        "(chosen by itself when the history is too short for a time hold-out)",
    )
    account_share: float = Field(
        default=0.25, gt=0, lt=1, description="share of accounts held out when holdout=accounts"
    )
    min_fit_dates: int = Field(
        default=3,
        ge=1,
        description="a time hold-out needs this many earlier dates for the booster, else accounts",
    )
    isotonic_min_positives: int = Field(default=300, ge=1, description="fewer positives -> sigmoid")
    base_rate: Literal["holdout", "latest"] = Field(
        default="holdout",
        description="holdout: the calibrator's level is the whole hold-out's; latest: its "
        "log-odds are shifted so the mean probability on the hold-out's latest snapshot date "
        "equals that date's observed rate (a churn rate that moved recently)",
    )
    latest_min_positives: int = Field(
        default=0,
        ge=0,
        description="with base_rate latest: earlier hold-out dates join the latest one, newest "
        "first, until the rows hold this many positive labels (0: the latest date alone); "
        "a rate read from a handful of positives moves every probability by their noise",
    )


class BoosterConfig(_Frozen):
    num_threads: int = Field(default=1, ge=1)
    max_rounds: int = Field(default=500, ge=1)
    early_stopping_rounds: int = Field(default=50, ge=1)
    refit_all_rows: bool = Field(
        default=True,
        description="after early stopping and calibration on the hold-out, retrain the booster "
        "on every training row (hold-out included) with the rounds found",
    )
    monotone: bool = Field(
        default=False,
        description="constrain LightGBM to the direction the feature registry declares per "
        "target (features/registry.py MONOTONE: e.g. more active users never raise churn); "
        "features declared 0 and categories stay free",
    )
    complexity: Literal["fixed", "by_positives", "cross_validated"] = Field(
        default="fixed",
        description="fixed: `params` as written; by_positives: fewer leaves, larger leaves and "
        "more L2 when the booster's training rows hold few positive labels "
        "(training.lightgbm_fit.COMPLEXITY_STEPS); cross_validated: the rung of "
        "training.complexity.COMPLEXITY_LADDER (2, 3, 7 leaves or `params`) with the lowest "
        "log loss over account-grouped folds of the training rows; tuned parameters override "
        "either rule",
    )
    complexity_folds: int = Field(
        default=5,
        ge=2,
        description="account-grouped folds of booster.complexity cross_validated",
    )
    params: dict[str, float | int] = Field(default_factory=dict)


class SearchDimension(_Frozen):
    type: Literal["float", "int"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchDimension:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self


class TuningConfig(_Frozen):
    trials: int = Field(default=0, ge=0, description="0 disables the search")
    timeout_seconds: float | None = Field(default=None, gt=0)
    inner_folds: int = Field(default=2, ge=1)
    holdout: Literal["same", "time", "accounts"] = Field(
        default="same",
        description="calibration hold-out of the inner fits: same = as `calibration.holdout` "
        "(set to accounts by itself when the rows before the first cut are too few for dates)",
    )
    min_positives: int = Field(
        default=0,
        ge=0,
        description="each inner validation fold must hold this many positive labels, else the "
        "search is skipped and the experiment's parameters (with booster.complexity's rule) "
        "stand: a choice among many trials by the log loss of a few dozen positives fits "
        "their noise",
    )
    search_space: dict[str, SearchDimension] = Field(default_factory=dict)


class EvaluationConfig(_Frozen):
    review_budget: float = Field(default=0.2, gt=0, le=1)
    high_risk_share: float = Field(default=0.2, gt=0, le=1)
    high_risk_threshold: float | None = Field(default=None, gt=0, lt=1)
    lead_days: int = Field(default=30, ge=0)
    ece_bins: int = Field(default=10, ge=2)
    arr_bands: list[float] = Field(default_factory=lambda: [10_000.0, 50_000.0])
    tenure_bands_days: list[float] = Field(default_factory=lambda: [180.0, 365.0, 730.0])


class PromotionConfig(_Frozen):
    min_auc_delta: float = Field(default=0.0, ge=0)
    brier_tolerance: float = Field(default=0.002, ge=0)
    interval: bool = Field(
        default=False,
        description="also require the lower end of the 95% account-bootstrap interval of the "
        "challenger's ROC-AUC gain over the champion (same backtest rows) to exceed "
        "min_auc_delta: a gain within the noise keeps the champion",
    )
    interval_resamples: int = Field(default=200, ge=20, description="bootstrap resamples")


class DriftConfig(_Frozen):
    bins: int = Field(default=10, ge=2, description="quantile bins per numeric feature")
    reference_periods: int = Field(
        default=3,
        ge=0,
        description="latest snapshot dates of the training rows the reference is fitted on; 0 = all",
    )
    same_month_last_year: bool = Field(
        default=True,
        description=(
            "also store each calendar month of the training year before the latest training "
            "date; a feature's PSI is then the smaller of its PSI against the recent dates and "
            "against the same calendar month a year earlier (seasonality is not drift)"
        ),
    )
    thresholds: tuple[float, float] = Field(
        default=(0.1, 0.2), description="PSI from which a feature is moderate / significant drift"
    )

    @model_validator(mode="after")
    def _ordered(self) -> DriftConfig:
        low, high = self.thresholds
        if not 0 < low < high:
            raise ValueError(f"thresholds must satisfy 0 < low < high, got {self.thresholds}")
        return self


class ExperimentConfig(_Frozen):
    name: str = "quarterly"
    seed: int = 42
    targets: list[Target] = ["churn", "expansion"]
    snapshot: SnapshotConfig = SnapshotConfig.model_validate({})
    min_positives: int = Field(default=50, ge=1)
    backtest: BacktestConfig = BacktestConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    booster: BoosterConfig = BoosterConfig()
    tuning: TuningConfig = TuningConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    promotion: PromotionConfig = PromotionConfig()
    drift: DriftConfig = DriftConfig()

    @model_validator(mode="after")
    def _unique_targets(self) -> ExperimentConfig:
        if not self.targets or len(set(self.targets)) != len(self.targets):
            raise ValueError(
                f"targets must be a non-empty list without repeats, got {self.targets}"
            )
        return self


class ExperimentConfigError(ValueError):
    """An experiment file that cannot be read or does not match the schema."""


def load_experiment(path: Path) -> ExperimentConfig:
    """Read and validate an experiment YAML file, naming the wrong key or value on error."""
    try:
        data: Any = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentConfigError(f"cannot read experiment file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ExperimentConfigError(f"{path}: expected a mapping at the top level")
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(validation_problems(exc, ExperimentConfig, data))
        raise ExperimentConfigError(f"{path}: {problems}") from exc
