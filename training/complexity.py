"""booster.complexity = cross_validated: the booster's size chosen on the company's own rows.

A history of a few hundred positive labels cannot support the 15-leaf trees a large one can,
and which size fits also depends on the target (churn on the simulated companies is close to
additive in the features, expansion needs interactions of demand and seats). A fixed rule
of the positive count cannot tell the targets apart, and a single time hold-out of ~60
positives cannot choose between sizes either (it picked the worse of two at half the cuts).

So each rung of COMPLEXITY_LADDER is scored by its out-of-fold log loss over account-grouped
folds of the booster's training rows: every positive label takes part in the choice, and an
account's rows never sit on both sides of a fold. Out-of-fold scores use the fold's own early
stopping, the same optimism for every rung.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from models.scoring.booster import design_matrix, learn_levels
from training.config import ExperimentConfig, Target
from training.lightgbm_fit import booster_params, fit_booster
from training.metrics import log_loss

# (name, LightGBM parameters over the experiment's), simplest first; the last rung is the
# experiment's own parameters. Leaf sizes and L2 grow as the trees shrink: a 2-leaf tree per
# round is an additive model, the most a few hundred positives pin down.
COMPLEXITY_LADDER: tuple[tuple[str, dict[str, float | int]], ...] = (
    ("2 leaves", {"num_leaves": 2, "min_data_in_leaf": 100, "lambda_l2": 10.0}),
    ("3 leaves", {"num_leaves": 3, "min_data_in_leaf": 100, "lambda_l2": 10.0}),
    ("7 leaves", {"num_leaves": 7, "min_data_in_leaf": 60, "lambda_l2": 5.0}),
    ("experiment params", {}),
)


@dataclass(frozen=True)
class ComplexityChoice:
    """The rung chosen, its parameters and every rung's out-of-fold log loss."""

    name: str
    params: dict[str, float | int]
    losses: dict[str, float]
    folds: int
    positives: int

    def reason(self) -> str:
        scores = ", ".join(f"{name} {loss:.4f}" for name, loss in self.losses.items())
        return (
            f"{self.name}: lowest log loss over {self.folds} account-grouped folds of every "
            f"training row, {self.positives} positive labels ({scores})"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ComplexityChoice:
        """The choice a model's metadata carries (`to_dict`)."""
        return cls(
            str(data["chosen"]), dict(data["params"]), dict(data["losses"]),
            int(data["folds"]), int(data["positives"]),
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": "cross_validated",
            "chosen": self.name,
            "params": dict(self.params),
            "losses": dict(self.losses),
            "folds": self.folds,
            "positives": self.positives,
        }


def choose_complexity(
    frame: pd.DataFrame,
    labels: np.ndarray,
    *,
    target: Target,
    config: ExperimentConfig,
    features: Sequence[str],
) -> ComplexityChoice | None:
    """The ladder's rung with the lowest account-grouped out-of-fold log loss on `frame`;
    None when the rows cannot be split (fewer accounts than folds, or a fold without
    both labels), and the experiment's parameters stand."""
    folds = config.booster.complexity_folds
    groups = frame["account_id"].astype("string").to_numpy()
    if len(np.unique(groups)) < folds:
        return None
    splits = list(GroupKFold(n_splits=folds).split(frame, labels, groups=groups))
    if any(len(np.unique(labels[part])) < 2 for split in splits for part in split):
        return None
    ladder = dict(COMPLEXITY_LADDER)
    oof = {name: np.empty(len(frame)) for name in ladder}
    for fit_pos, valid_pos in splits:
        # The design matrices depend on the fold, not the rung: built once per fold.
        fit_rows, valid_rows = frame.iloc[fit_pos], frame.iloc[valid_pos]
        levels = learn_levels(fit_rows, features)
        x_fit = design_matrix(fit_rows, features=features, levels=levels)
        x_valid = design_matrix(valid_rows, features=features, levels=levels)
        for name, params in ladder.items():
            booster = fit_booster(
                x_fit,
                labels[fit_pos],
                params=booster_params(
                    config.booster,
                    seed=config.seed,
                    overrides=params,
                    features=list(features),
                    target=target,
                ),  # fmt: skip
                rounds=config.booster.max_rounds,
                valid=(x_valid, labels[valid_pos]),
                early_stopping_rounds=config.booster.early_stopping_rounds,
            )
            oof[name][valid_pos] = booster.predict(x_valid, num_iteration=booster.best_iteration)
    losses = {name: log_loss(labels, predicted) for name, predicted in oof.items()}
    chosen = min(losses, key=lambda name: losses[name])
    return ComplexityChoice(chosen, dict(ladder[chosen]), losses, folds, int(labels.sum()))
