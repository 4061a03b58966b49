"""Recommended play per account: one function over the play table of rules.yaml."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.rules.config import ExpansionPlaySpec, InterventionRow, RulesConfig
from models.rules.health import HealthNormaliser, score_health
from models.rules.pqa import score_pqa
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


def _optional_values(series: pd.Series | None, index: pd.Index) -> list[float | None]:
    if series is None:
        return [None] * len(index)
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
    health = score_health(snapshots, config=config, normaliser=normaliser, previous=previous)
    pqa = score_pqa(snapshots, config=config)
    fired = evaluate_rules(
        snapshots, config=config, health=health["health_score"], normaliser=normaliser
    )
    p_churn = _optional_values(churn_probability, snapshots.index)
    p_expand = _optional_values(expansion_probability, snapshots.index)
    plays = [
        recommend_play(
            health_score=float(score),
            health_band="Unknown" if pd.isna(band) else str(band),
            health_change=None if pd.isna(change) else float(change),
            risks=[f for f in rules if f.kind == "risk"],
            triggers=[f for f in rules if f.kind == "expansion"],
            churn_probability=pc,
            expansion_probability=pe,
            config=config,
        )
        for score, band, change, rules, pc, pe in zip(
            health["health_score"],
            health["health_band"],
            health["health_change"],
            fired,
            p_churn,
            p_expand,
            strict=True,
        )
    ]
    out = pd.concat([health, pqa], axis=1)
    out["risks"] = [[f.name for f in rules if f.kind == "risk"] for rules in fired]
    out["triggers"] = [[f.name for f in rules if f.kind == "expansion"] for rules in fired]
    out["intervention"] = pd.array([p.intervention for p in plays], dtype="string")
    out["response_time"] = pd.array([p.response_time for p in plays], dtype="string")
    out["expansion_play"] = pd.array([p.expansion_play for p in plays], dtype="string")
    out["play_reason"] = pd.array([p.reason for p in plays], dtype="string")
    return out
