"""Per-account drivers: the features that push a model's score up or down most (TreeSHAP)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.registry import BY_NAME
from models.scoring.booster import ScoringModel

_OUTCOME = {"churn": "churn risk", "expansion": "expansion likelihood"}


@dataclass(frozen=True)
class Driver:
    """One feature's contribution to one account's score, with a plain-language sentence."""

    feature: str
    value: float | str | None
    contribution: float
    direction: Literal["raises", "lowers"]
    text: str


def top_drivers(
    model: ScoringModel, frame: Any, *, k: int = 5, matrix: np.ndarray | None = None
) -> list[list[Driver]]:
    """Up to k drivers per row of `frame`, largest absolute contribution first.

    `frame` is a DataFrame or a `models.table.Table`; `matrix` the model's input already
    built from it by `model.matrix_array` (saves rebuilding it).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    contrib = model.contributions(frame if matrix is None else matrix)[:, :-1]
    outcome = _OUTCOME.get(str(model.metadata.get("target", "")), "score")
    # Stable sort so equal contributions keep registry order (deterministic output).
    orders = np.argsort(-np.abs(contrib), axis=1, kind="stable")[:, :k]
    columns: dict[str, Any] = {}
    result: list[list[Driver]] = []
    for row_pos in range(len(frame)):
        row = contrib[row_pos]
        drivers = []
        for j in orders[row_pos].tolist():
            if row[j] == 0.0:
                continue
            name = model.feature_names[j]
            if name not in columns:
                columns[name] = _column_values(frame[name])
            drivers.append(_driver(name, columns[name][row_pos], row[j], outcome))
        result.append(drivers)
    return result


def _column_values(col: Any) -> Any:
    # The raw (not encoded) values: category strings, numbers, missing markers.
    return col.to_numpy() if isinstance(col, pd.Series) else col


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
