"""Baselines fitted inside a training fold: logistic regression and the rule-based scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.rules.config import RulesConfig
from models.rules.health import HealthNormaliser, score_health
from models.rules.pqa import score_pqa
from models.scoring.booster import categorical_features
from models.scoring.calibration import ScoreToProbability
from training.config import Target

_MISSING = "__missing__"


def _logistic_inputs(frame: pd.DataFrame, features: Sequence[str]) -> pd.DataFrame:
    cats = set(categorical_features(features))
    columns = {
        name: (
            frame[name].astype("object").where(frame[name].notna(), _MISSING).astype(str)
            if name in cats
            else frame[name].astype("float64")
        )
        for name in features
    }
    return pd.DataFrame(columns, index=frame.index)


@dataclass(frozen=True)
class LogisticBaseline:
    """Impute + scale + one-hot + logistic regression on the model's features."""

    pipeline: Pipeline
    features: tuple[str, ...]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, labels: np.ndarray, *, features: Sequence[str], seed: int
    ) -> LogisticBaseline:
        """Fit on training-fold rows only."""
        cats = categorical_features(features)
        nums = [f for f in features if f not in cats]
        numeric = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            StandardScaler(),
        )
        prep = ColumnTransformer(
            [("num", numeric, nums), ("cat", OneHotEncoder(handle_unknown="ignore"), cats)]
        )
        model = LogisticRegression(C=1.0, max_iter=2000, random_state=seed)
        pipeline = Pipeline([("prep", prep), ("lr", model)])
        pipeline.fit(_logistic_inputs(frame, features), labels.astype(int))
        return cls(pipeline, tuple(features))

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class."""
        proba = self.pipeline.predict_proba(_logistic_inputs(frame, self.features))
        return np.asarray(proba[:, 1], dtype=float)


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
