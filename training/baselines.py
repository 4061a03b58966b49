"""Baselines fitted inside a training fold: logistic regression and the rule-based scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.rules.config import RulesConfig
from models.rules.health import HealthNormaliser, score_health
from models.rules.pqa import score_pqa
from models.scoring.booster import ScoringModel, design_array, learn_levels
from models.scoring.calibration import ScoreToProbability
from models.scoring.linear import LinearScorer
from training.config import Target

# The logistic recipe's solver: sklearn's L2 logistic regression (lbfgs) with these settings.
LOGISTIC_C = 1.0
LOGISTIC_MAX_ITER = 2000


@dataclass(frozen=True)
class LogisticBaseline:
    """Impute + scale + one-hot + logistic regression on the model's features, as a ScoringModel.

    The one definition of the logistic recipe's coefficients: the backtest's "logistic"
    scorer and a served logistic model (`training.fit.fit_linear_model`) are both fitted
    here, and the result is plain JSON numbers (`models.scoring.linear.LinearScorer`) read
    from the same design array as the booster. sklearn solves; nothing of it is kept.
    """

    model: ScoringModel

    @property
    def features(self) -> tuple[str, ...]:
        return self.model.feature_names

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, labels: np.ndarray, *, features: Sequence[str], seed: int
    ) -> LogisticBaseline:
        """Fit on training-fold rows only (levels, medians, scales and coefficients)."""
        names = tuple(features)
        levels = learn_levels(frame, names)
        x = design_array(frame, features=names, levels=levels)
        linear = LinearScorer.fit(
            x,
            np.asarray(labels, dtype=float),
            feature_names=names,
            levels=levels,
            c=LOGISTIC_C,
            max_iter=LOGISTIC_MAX_ITER,
            seed=seed,
        )
        return cls(ScoringModel(None, names, levels, linear=linear))

    def predict_raw(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Log-odds per row."""
        return self.model.predict_raw(frame)

    def predict_proba(self, frame: pd.DataFrame | np.ndarray) -> np.ndarray:
        """Probability of the positive class (the regression's own sigmoid, uncalibrated)."""
        return self.model.predict_proba(frame)


@dataclass(frozen=True)
class RuleBaseline:
    """The rule score as a risk/likelihood ranking, plus its isotonic probability map."""

    target: Target
    normaliser: HealthNormaliser | None
    calibration: ScoreToProbability

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, labels: np.ndarray, *, target: Target, rules: RulesConfig
    ) -> RuleBaseline:
        """Health (churn) or PQA (expansion) fitted on training-fold rows."""
        normaliser = HealthNormaliser.fit(frame, config=rules) if target == "churn" else None
        scores = _rule_score(frame, target=target, rules=rules, normaliser=normaliser)
        # A higher health score means less churn; a higher PQA score more expansion.
        calibration = ScoreToProbability.fit(scores, labels, decreasing=target == "churn")
        return cls(target, normaliser, calibration)

    def risk(self, frame: pd.DataFrame, *, rules: RulesConfig) -> np.ndarray:
        """A score ordered like the event's probability (100 - health for churn; PQA)."""
        score = _rule_score(frame, target=self.target, rules=rules, normaliser=self.normaliser)
        return 100.0 - score if self.target == "churn" else score

    def category_risks(self, frame: pd.DataFrame, *, rules: RulesConfig) -> dict[str, np.ndarray]:
        """Churn only: 100 - each health category's sub-score (NaN where it has no signal)."""
        if self.normaliser is None:
            raise ValueError("health categories exist for the churn target only")
        scores = score_health(frame, config=rules, normaliser=self.normaliser)
        return {
            name: 100.0 - scores[f"health_{name}"].to_numpy(dtype=float)
            for name in rules.health.categories
        }

    def predict_proba(self, frame: pd.DataFrame, *, rules: RulesConfig) -> np.ndarray:
        """Calibrated probability from the rule score."""
        score = _rule_score(frame, target=self.target, rules=rules, normaliser=self.normaliser)
        return self.calibration.predict(score)


def _rule_score(
    frame: pd.DataFrame,
    *,
    target: Target,
    rules: RulesConfig,
    normaliser: HealthNormaliser | None,
) -> np.ndarray:
    if target == "churn":
        assert normaliser is not None
        score = score_health(frame, config=rules, normaliser=normaliser)["health_score"]
        # An account with no health signal at all sits at the neutral middle.
        return score.fillna(50.0).to_numpy(dtype=float)
    return score_pqa(frame, config=rules)["pqa_score"].fillna(0.0).to_numpy(dtype=float)
