"""Churn-risk signals and expansion triggers: named predicates over snapshot features."""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from models.rules.config import HEALTH_SCORE, Condition, RulesConfig, RuleSpec
from models.rules.health import HealthNormaliser, numeric_column, threshold_key

_OPS: dict[str, Callable[[np.ndarray, float], np.ndarray]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


@dataclass(frozen=True)
class FiredRule:
    """A rule that fired for one row, with the values and thresholds behind it."""

    name: str
    kind: Literal["risk", "expansion"]
    text: str
    evidence: dict[str, float | str | None]


def _threshold(cond: Condition, normaliser: HealthNormaliser) -> float | None:
    if cond.quantile is None:
        return cond.value
    return normaliser.thresholds.get(threshold_key(cond.feature, cond.quantile))


def _values(frame: Any, feature: str, health: np.ndarray) -> np.ndarray:
    return health if feature == HEALTH_SCORE else numeric_column(frame, feature)


def _rule_mask(
    rule: RuleSpec, frame: Any, health: np.ndarray, normaliser: HealthNormaliser
) -> np.ndarray:
    # A condition on an absent/NaN feature, or a quantile never fitted, is false.
    masks = []
    for cond in rule.conditions:
        thr = _threshold(cond, normaliser)
        values = _values(frame, cond.feature, health)
        ok = np.zeros(len(frame), dtype=bool) if thr is None else _OPS[cond.op](values, thr)
        masks.append(ok & ~np.isnan(values))
    return np.logical_and.reduce(masks) if rule.match == "all" else np.logical_or.reduce(masks)


def _health_array(snapshots: Any, health: pd.Series | np.ndarray | None) -> np.ndarray:
    if health is None:
        return np.full(len(snapshots), np.nan)
    if len(health) != len(snapshots):
        raise ValueError(f"health has {len(health)} rows, snapshots {len(snapshots)}")
    if isinstance(health, np.ndarray):
        return health.astype("float64")
    return health.to_numpy(dtype="float64", na_value=np.nan)


def rule_masks(
    snapshots: pd.DataFrame,
    *,
    config: RulesConfig,
    health: pd.Series | None,
    normaliser: HealthNormaliser,
) -> pd.DataFrame:
    """One boolean column per configured rule (True = fired), indexed like snapshots."""
    return pd.DataFrame(
        _masks(snapshots, config, _health_array(snapshots, health), normaliser),
        index=snapshots.index,
    )


def _masks(
    snapshots: Any, config: RulesConfig, scores: np.ndarray, normaliser: HealthNormaliser
) -> dict[str, np.ndarray]:
    return {r.name: _rule_mask(r, snapshots, scores, normaliser) for r in config.rules}


def _limits(rule: RuleSpec, normaliser: HealthNormaliser) -> dict[str, float | str | None]:
    """Per feature of the rule, where it fires: {"nps_latest_limit": "< 7"}.

    A reader sees one readable entry per feature (two conditions on one feature joined with
    "and"), not keys that end in an operator; a quantile threshold never fitted reads "n/a".
    """
    parts: dict[str, list[str]] = {}
    for c in rule.conditions:
        value = _threshold(c, normaliser)
        shown = "n/a" if value is None else f"{float(value):.3g}"
        parts.setdefault(c.feature, []).append(f"{c.op} {shown}")
    return {f"{feature}_limit": " and ".join(ops) for feature, ops in parts.items()}


def _as_optional(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(v) else float(v) for v in values]


def evaluate_rules(
    snapshots: Any,
    *,
    config: RulesConfig,
    health: pd.Series | np.ndarray | None,
    normaliser: HealthNormaliser,
) -> list[list[FiredRule]]:
    """Per row, the fired rules (risks and expansion triggers) with their evidence.

    `snapshots` is a DataFrame or a `models.table.Table` of the same columns.
    """
    scores = _health_array(snapshots, health)
    masks = _masks(snapshots, config, scores, normaliser)
    fired: list[list[FiredRule]] = [[] for _ in range(len(snapshots))]
    for rule in config.rules:
        rows = np.flatnonzero(masks[rule.name])
        if not rows.size:
            continue
        values = {
            c.feature: _as_optional(_values(snapshots, c.feature, scores)[rows])
            for c in rule.conditions
        }
        limits = _limits(rule, normaliser)
        for i, row in enumerate(rows):
            evidence = {name: column[i] for name, column in values.items()} | limits
            fired[row].append(FiredRule(rule.name, rule.kind, rule.text, evidence))
    return fired
