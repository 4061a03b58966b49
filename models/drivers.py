"""Per-account drivers: the features that push a model's score up or down most (TreeSHAP)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from features.registry import BY_NAME
from models.booster import ScoringModel

_OUTCOME = {"churn": "churn risk", "expansion": "expansion likelihood"}


@dataclass(frozen=True)
class Driver:
    """One feature's contribution to one account's score, with a plain-language sentence."""

    feature: str
    value: float | str | None
    contribution: float
    direction: Literal["raises", "lowers"]
    text: str


def top_drivers(model: ScoringModel, frame: pd.DataFrame, *, k: int = 5) -> list[list[Driver]]:
    """Up to k drivers per row of `frame`, largest absolute contribution first."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    contrib = model.contributions(frame)[:, :-1]
    outcome = _OUTCOME.get(str(model.metadata.get("target", "")), "score")
    result: list[list[Driver]] = []
    for row_pos in range(len(frame)):
        row = contrib[row_pos]
        # Stable sort so equal contributions keep registry order (deterministic output).
        order = np.argsort(-np.abs(row), kind="stable")[:k]
        drivers = [
            _driver(
                model.feature_names[j], frame.iloc[row_pos][model.feature_names[j]], row[j], outcome
            )
            for j in order
            if row[j] != 0.0
        ]
        result.append(drivers)
    return result


def _driver(feature: str, raw_value: object, contribution: float, outcome: str) -> Driver:
    value = _plain_value(raw_value)
    direction: Literal["raises", "lowers"] = "raises" if contribution > 0 else "lowers"
    text = f"{describe_value(feature, value)} {direction} the {outcome}"
    return Driver(feature, value, float(contribution), direction, text)


def _plain_value(value: object) -> float | str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):  # type: ignore[call-overload]
        return None
    if isinstance(value, str):
        return value
    return float(value)  # type: ignore[arg-type]


def describe_value(feature: str, value: float | str | None) -> str:
    """'<registry description>: <value> <unit>' for a feature, in plain language."""
    spec = BY_NAME[feature]
    if value is None:
        shown = "unknown"
    elif spec.kind == "bool" and isinstance(value, float):
        shown = "yes" if value >= 0.5 else "no"
    elif isinstance(value, float):
        shown = _format_number(value)
        if spec.unit:
            shown = f"{shown} {spec.unit}"
    else:
        shown = str(value)
    return f"{spec.description[:1].upper()}{spec.description[1:]}: {shown}"


def _format_number(value: float) -> str:
    if math.isinf(value):
        return "infinite"
    if value == int(value) and abs(value) < 1e12:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"
