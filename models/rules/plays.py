"""Recommended play per account: one function over the play table of rules.yaml.

`assess_rules` and `plays_for` are the one path from snapshot rows to plays: `nrr health`
(`assess_accounts`), `nrr score` and the API (`serving.scoring`) all go through them, so the
same account gets the same play everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import ExpansionPlaySpec, InterventionRow, RulesConfig
from models.rules.health import HealthNormaliser, health_columns
from models.rules.pqa import pqa_columns
from models.rules.signals import FiredRule, evaluate_rules


@dataclass(frozen=True)
class Play:
    """What the CSM should do, how fast, which expansion play (if any), and why."""

    intervention: str | None
    response_time: str | None
    expansion_play: str | None
    reason: str


def _known(value: float | None) -> bool:
    return value is not None and not math.isnan(value)


def _row_matches(
    row: InterventionRow,
    *,
    health_band: str,
    health_change: float | None,
    risk_names: set[str],
    churn_probability: float | None,
) -> bool:
    # Every condition the row states must hold; an unknown input fails its condition.
    if row.bands is not None and health_band not in row.bands:
        return False
    if row.falling is not None:
        falling = _known(health_change) and health_change is not None and health_change < 0
        if falling != row.falling:
            return False
    if row.risks_any is not None and not risk_names & set(row.risks_any):
        return False
    if row.churn_probability_at_least is not None:
        p = churn_probability
        if not (_known(p) and p is not None and p >= row.churn_probability_at_least):
            return False
    return True


def _describe(row: InterventionRow, risk_names: set[str]) -> str:
    parts = []
    if row.bands is not None:
        parts.append("health " + "/".join(row.bands))
    if row.falling:
        parts.append("falling")
    if row.risks_any is not None:
        parts.append("risk " + ", ".join(sorted(risk_names & set(row.risks_any))))
    if row.churn_probability_at_least is not None:
        parts.append(f"churn probability >= {row.churn_probability_at_least:g}")
    return " and ".join(parts)


def _expansion(
    spec: ExpansionPlaySpec,
    *,
    health_band: str,
    triggers: list[FiredRule],
    churn_probability: float | None,
    expansion_probability: float | None,
) -> tuple[str | None, str]:
    play = spec.by_band.get(health_band)
    if play is None:
        return None, f"no expansion play at health {health_band} (fix health first)"
    if _known(churn_probability) and (churn_probability or 0.0) >= spec.churn_probability_gate:
        return None, f"no expansion play: churn probability >= {spec.churn_probability_gate:g}"
    likely = _known(expansion_probability) and (
        (expansion_probability or 0.0) >= spec.needs_trigger_or_probability
    )
    if not triggers and not likely:
        return None, "no expansion trigger"
    why = (
        ", ".join(t.name for t in triggers) or f"expansion probability {expansion_probability:.0%}"
    )
    return play, f"{play} ({why})"


def recommend_play(
    *,
    health_score: float,
    health_band: str,
    health_change: float | None,
    risks: list[FiredRule],
    triggers: list[FiredRule],
    churn_probability: float | None,
    expansion_probability: float | None,
    config: RulesConfig,
) -> Play:
    """The first matching intervention row and the health-gated expansion play."""
    risk_names = {r.name for r in risks}
    row = next(
        (
            r
            for r in config.plays.interventions
            if _row_matches(
                r,
                health_band=health_band,
                health_change=health_change,
                risk_names=risk_names,
                churn_probability=churn_probability,
            )
        ),
        None,
    )
    expansion, expansion_reason = _expansion(
        config.plays.expansion,
        health_band=health_band,
        triggers=triggers,
        churn_probability=churn_probability,
        expansion_probability=expansion_probability,
    )
    head = (
        f"health {health_score:.0f} ({health_band})" if _known(health_score) else "health unknown"
    )
    action = f"{row.intervention}: {_describe(row, risk_names)}" if row else "no intervention"
    return Play(
        intervention=row.intervention if row else None,
        response_time=row.response_time if row else None,
        expansion_play=expansion,
        reason=f"{head}; {action}; {expansion_reason}",
    )


UNKNOWN_BAND = "Unknown"


@dataclass(frozen=True)
class RuleAssessment:
    """Health and PQA columns (`health_columns`, `pqa_columns`) and the fired rules per row."""

    health: dict[str, Any]
    pqa: dict[str, Any]
    fired: list[list[FiredRule]]

    def risks(self, i: int) -> list[FiredRule]:
        return [f for f in self.fired[i] if f.kind == "risk"]

    def triggers(self, i: int) -> list[FiredRule]:
        return [f for f in self.fired[i] if f.kind == "expansion"]


def assess_rules(
    rows: Any,
    *,
    config: RulesConfig,
    normaliser: HealthNormaliser,
    previous: pd.DataFrame | None = None,
) -> RuleAssessment:
    """Health, PQA and fired risks/triggers of snapshot rows (a DataFrame or a `Table`)."""
    health = health_columns(rows, config=config, normaliser=normaliser, previous=previous)
    pqa = pqa_columns(rows, config=config)
    fired = evaluate_rules(
        rows, config=config, health=health["health_score"], normaliser=normaliser
    )
    return RuleAssessment(health=health, pqa=pqa, fired=fired)


def health_history(
    previous: pd.DataFrame | None, *, config: RulesConfig, normaliser: HealthNormaliser
) -> pd.DataFrame | None:
    """The health scores of earlier snapshot rows (account_id, as_of, health_score).

    What `health_columns(previous=...)` needs for `health_change` and the drop alert: the
    rows of the previous snapshot date, scored with the same rules and normaliser as the
    current ones. None (or no rows) gives None: no change is known.
    """
    if previous is None or previous.empty:
        return None
    rows = previous.reset_index(drop=True)
    scores = health_columns(rows, config=config, normaliser=normaliser)["health_score"]
    return pd.DataFrame(
        {
            "account_id": rows["account_id"].astype("string").to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"]).to_numpy(),
            "health_score": np.asarray(scores, dtype="float64"),
        }
    )


def _optional(value: Any) -> float | None:
    if value is None or value is pd.NA:
        return None
    out = float(value)
    return None if math.isnan(out) else out


def plays_for(
    assessment: RuleAssessment,
    *,
    churn_probability: Sequence[float | None] | None,
    expansion_probability: Sequence[float | None] | None,
    config: RulesConfig,
) -> list[Play]:
    """The play of every assessed row, given its churn and expansion probabilities (if any)."""
    health = assessment.health
    n = len(assessment.fired)
    p_churn = [None] * n if churn_probability is None else list(churn_probability)
    p_expand = [None] * n if expansion_probability is None else list(expansion_probability)
    return [
        recommend_play(
            health_score=float(health["health_score"][i]),
            health_band=UNKNOWN_BAND if band is None or band is pd.NA else str(band),
            health_change=_optional(health["health_change"][i]),
            risks=assessment.risks(i),
            triggers=assessment.triggers(i),
            churn_probability=_optional(p_churn[i]),
            expansion_probability=_optional(p_expand[i]),
            config=config,
        )
        for i, band in enumerate(health["health_band"])
    ]


def _optional_values(series: pd.Series | None, index: pd.Index) -> list[float | None] | None:
    if series is None:
        return None
    values = series.reindex(index).to_numpy(dtype="float64", na_value=np.nan)
    return [None if np.isnan(v) else float(v) for v in values]


def assess_accounts(
    snapshots: pd.DataFrame,
    *,
    config: RulesConfig,
    normaliser: HealthNormaliser,
    previous: pd.DataFrame | None = None,
    churn_probability: pd.Series | None = None,
    expansion_probability: pd.Series | None = None,
) -> pd.DataFrame:
    """Health, PQA, fired risks/triggers and the play per row, indexed like snapshots."""
    assessment = assess_rules(snapshots, config=config, normaliser=normaliser, previous=previous)
    plays = plays_for(
        assessment,
        churn_probability=_optional_values(churn_probability, snapshots.index),
        expansion_probability=_optional_values(expansion_probability, snapshots.index),
        config=config,
    )
    out = pd.DataFrame(index=snapshots.index)
    for name, values in {**assessment.health, **assessment.pqa}.items():
        out[name] = pd.array(values, dtype="string") if name.endswith("_band") else values
    n = len(assessment.fired)
    out["risks"] = [[f.name for f in assessment.risks(i)] for i in range(n)]
    out["triggers"] = [[f.name for f in assessment.triggers(i)] for i in range(n)]
    out["intervention"] = pd.array([p.intervention for p in plays], dtype="string")
    out["response_time"] = pd.array([p.response_time for p in plays], dtype="string")
    out["expansion_play"] = pd.array([p.expansion_play for p in plays], dtype="string")
    out["play_reason"] = pd.array([p.reason for p in plays], dtype="string")
    return out
