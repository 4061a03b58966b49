"""Turn snapshot rows into score payloads: model probabilities or the rules fallback, and why.

Each probability says where it came from (`churn_source`, `expansion_source`: "model" or
"rules"); `source` sums them up: "model" when both came from the models, "rules" when both
came from the rules, "mixed" otherwise. `fallback_reason` says, once each, which model did
not answer and why. Health, PQA, signals, plays (`models.rules.plays`) and renewal alerts
(`models.rules.renewals`) come from the same functions `nrr health` and `nrr renewals` use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import TYPE_CHECKING, Any, TypeAlias

import numpy as np
import pandas as pd

from models.scoring.booster import PARALLEL_ROWS
from models.table import Table
from serving.registry_client import ModelBundle

if TYPE_CHECKING:
    from models.rules.plays import Play, RuleAssessment
    from models.scoring.drivers import Peers

# Snapshot rows: a DataFrame (files, precompute) or a Table (requests, no pandas overhead).
Rows: TypeAlias = pd.DataFrame | Table

FALLBACK_KEYS = {"churn": "health_score", "expansion": "pqa_score"}


@dataclass(frozen=True)
class RoleScores:
    """One probability (churn or expansion) for every row, and where each value came from.

    `reason`: per row, why the model did not answer (naming the role), None when it did;
    `note`: a problem of the rules fallback itself (no calibration map), None when none.
    """

    role: str
    probability: list[float | None]
    from_model: list[bool]
    reason: list[str | None]
    drivers: list[list[dict[str, Any]]]
    note: str | None = None
    context: list[list[dict[str, Any]]] | None = None
    # Request rows only: per row, the model features without a value (not sent or null)
    # and the category values the model was not trained on, both scored as missing values.
    missing: list[list[str]] | None = None
    unknown: list[list[str]] | None = None


def missing_model_features(
    rows: Rows, *, features: Sequence[str], provided: Rows | None
) -> list[list[str]]:
    """Per row, the model features the caller did not supply (absent, not merely null)."""
    absent_cols = [f for f in features if f not in rows.columns]
    out: list[list[str]] = [list(absent_cols) for _ in range(len(rows))]
    if provided is not None:
        cols = [f for f in features if f in provided.columns]
        if not cols:
            return out
        mask = ~np.column_stack([np.asarray(provided[c], dtype=bool) for c in cols])
        for i in np.flatnonzero(mask.any(axis=1)).tolist():
            out[i].extend(c for c, miss in zip(cols, mask[i], strict=True) if miss)
    return out


def valueless_model_features(rows: Rows, *, features: Sequence[str]) -> list[list[str]]:
    """Per row, the model features present as columns but without a value (NaN / None)."""
    out: list[list[str]] = [[] for _ in range(len(rows))]
    for name in features:
        if name not in rows.columns:
            continue
        col = rows[name]
        if isinstance(col, np.ndarray) and col.dtype.kind == "f":
            empty = np.isnan(col)
        else:
            empty = np.asarray(pd.isna(pd.Series(col, dtype=object)), dtype=bool)
        for i in np.flatnonzero(empty).tolist():
            out[i].append(name)
    return out


def unknown_levels(rows: Rows, *, levels: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Per row, each category value the model was not trained on, as `name 'value'`.

    `models.scoring.booster.design_array` codes such a value as NaN: LightGBM's missing
    branch, exactly as for a snapshot row holding it.
    """
    out: list[list[str]] = [[] for _ in range(len(rows))]
    for name, known in levels.items():
        if name not in rows.columns:
            continue
        allowed = set(known)
        for i, value in enumerate(rows[name]):
            if value is not None and not pd.isna(value) and str(value) not in allowed:
                out[i].append(f"{name} {str(value)!r}")
    return out


def _fallback_probability(
    rule_score: np.ndarray, bundle: ModelBundle, role: str
) -> tuple[list[float | None], str | None]:
    spec = bundle.fallback_maps.get(role)
    if spec is None:
        return [None] * len(rule_score), f"no fallback calibration for {role}"
    from models.scoring.calibration import ScoreToProbability

    mapper = ScoreToProbability.from_dict(spec)
    values = np.asarray(mapper.predict(np.asarray(rule_score, dtype=float)))
    return [None if not math.isfinite(v) else float(v) for v in values], None


def _driver_dict(d: Any) -> dict[str, Any]:
    return {
        "feature": d.feature,
        "value": _jsonable(d.value),
        "contribution": float(d.contribution),
        "direction": d.direction,
        "text": d.text,
    }


def _driver_dicts(
    model: Any,
    frame: Rows,
    k: int,
    matrix: np.ndarray,
    *,
    earlier: pd.DataFrame | None = None,
    peers: Rows | Peers | None = None,
) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """Per row, the actionable drivers and the contract context, as plain data."""
    from models.scoring.drivers import explain

    if k == 0 or len(frame) == 0:
        empty: list[list[dict[str, Any]]] = [[] for _ in range(len(frame))]
        return empty, [[] for _ in range(len(frame))]
    found = explain(model, frame, k=k, matrix=matrix, earlier=earlier, peers=peers)
    return (
        [[_driver_dict(d) for d in e.drivers] for e in found],
        [[_driver_dict(d) for d in e.context] for e in found],
    )


def role_scores(
    rows: Rows,
    *,
    role: str,
    bundle: ModelBundle,
    rule_score: np.ndarray,
    provided: Rows | None,
    drivers_k: int,
    matrices: dict[Any, np.ndarray] | None = None,
    earlier: pd.DataFrame | None = None,
    peers: Rows | Peers | None = None,
) -> RoleScores:
    """Model probability where the model can answer, calibrated rule score elsewhere."""
    n = len(rows)
    model = bundle.model(role)
    fallback, note = _fallback_probability(rule_score, bundle, role)
    reason: list[str | None] = [f"no {role} model"] * n
    use = np.zeros(n, dtype=bool)
    valueless: list[list[str]] | None = None
    unknown: list[list[str]] | None = None
    if model is not None and provided is not None:
        # A request: features not sent are missing values, as NaN in a snapshot row is, so
        # the model answers every row and the payload lists what it did without.
        use[:] = True
        reason = [None] * n
        valueless = valueless_model_features(rows, features=model.feature_names)
        unknown = unknown_levels(rows, levels=model.levels)
    elif model is not None:
        missing = missing_model_features(rows, features=model.feature_names, provided=provided)
        for i, miss in enumerate(missing):
            use[i] = not miss
            reason[i] = None if not miss else f"request missing {role} model features: {miss[:5]}"
    prob: list[float | None] = list(fallback)
    drivers: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    context: list[list[dict[str, Any]]] = [[] for _ in range(n)]
    if use.any():
        positions = np.flatnonzero(use)
        sub = rows.take(positions) if isinstance(rows, Table) else rows.iloc[positions]
        try:
            x = _matrix(model, sub, use, {} if matrices is None else matrices)
            values = model.predict_proba(x)  # type: ignore[union-attr]
            # Peers for the percentiles: the served book when given, else every row scored
            # (not only those the model answers).
            sub_drivers, sub_context = _driver_dicts(
                model, sub, drivers_k, x, earlier=earlier, peers=rows if peers is None else peers
            )
        except ValueError as exc:  # e.g. a non-numeric value: the rules still answer
            use[:] = False
            reason = [f"{role} model could not score the request: {exc}"] * n
        else:
            for j, i in enumerate(np.flatnonzero(use).tolist()):
                prob[i], drivers[i] = float(values[j]), sub_drivers[j]
                context[i] = sub_context[j]
    return RoleScores(role, prob, use.tolist(), reason, drivers, note, context, valueless, unknown)


def combined_source(from_model: Sequence[bool]) -> str:
    """The overall source of a score: "model" (all models), "rules" (none) or "mixed"."""
    if all(from_model):
        return "model"
    return "mixed" if any(from_model) else "rules"


def fallback_reason(roles: Sequence[RoleScores], i: int, bundle: ModelBundle) -> str | None:
    """Why row i was not answered by the models alone, each message once; None when it was.

    First which model did not answer (naming it), then why the bundle lacks a model (when a
    role had none loaded), then problems of the rules fallback.
    """
    missed = [r for r in roles if not r.from_model[i]]
    if not missed:
        return None
    parts = [r.reason[i] for r in missed if r.reason[i]]
    if bundle.fallback_reason and any(bundle.model(r.role) is None for r in missed):
        parts.extend(p.strip() for p in bundle.fallback_reason.split("; "))
    parts.extend(r.note for r in missed if r.note)
    return "; ".join(dict.fromkeys(p for p in parts if p))


def _matrix(model: Any, sub: Rows, use: np.ndarray, cache: dict[Any, np.ndarray]) -> np.ndarray:
    # Built once per request: churn and expansion models usually share features and levels.
    levels = tuple((k, tuple(v)) for k, v in sorted(model.levels.items()))
    key = (tuple(model.feature_names), levels, use.tobytes())
    if key not in cache:
        cache[key] = model.matrix_array(sub)
    return cache[key]


def _jsonable(value: Any) -> float | str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_)):
        out = float(value)
        return out if math.isfinite(out) else None
    if value is pd.NA or value is pd.NaT:
        return None
    return str(value)


def _timestamp(value: Any) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def _normaliser(bundle: ModelBundle, rows: Rows, rules: Any) -> Any:
    from models.rules.health import HealthNormaliser

    if bundle.normaliser is not None:
        return HealthNormaliser.from_dict(bundle.normaliser)
    # No trained anchors: anchor on the population being scored, the next best reference.
    return HealthNormaliser.fit(rows, config=rules)


def score_payloads(
    rows: Rows,
    *,
    bundle: ModelBundle,
    rules: Any,
    drivers_k: int,
    provided: Rows | None = None,
    previous: pd.DataFrame | None = None,
    earlier: pd.DataFrame | None = None,
    peers: Rows | Peers | None = None,
) -> list[dict[str, Any]]:
    """One API score payload (the `Score` schema as plain data) per snapshot row.

    `rows` is a snapshot DataFrame or a `models.table.Table` of the same columns (what a
    request becomes); both give the same payloads. `previous`: the same accounts' snapshot
    rows at the previous snapshot date (for `health_change`, which the At-risk play needs);
    `earlier`: their rows about 90 days before (the drivers' "90 days ago" comparison);
    `peers`: the population for the drivers' segment percentiles (default: `rows`), rows or
    a `models.scoring.drivers.Peers` kept across calls.
    """
    from models.rules.plays import assess_rules, health_history, plays_for
    from models.rules.renewals import renewal_status

    if isinstance(rows, pd.DataFrame):
        rows = rows.reset_index(drop=True)
    normaliser = _normaliser(bundle, rows, rules)
    history = health_history(previous, config=rules, normaliser=normaliser)
    rules_part = assess_rules(rows, config=rules, normaliser=normaliser, previous=history)
    health, pqa = rules_part.health, rules_part.pqa
    common: dict[str, Any] = {
        "bundle": bundle,
        "provided": provided,
        "drivers_k": drivers_k,
        "matrices": {},
        "earlier": earlier,
        "peers": peers,
    }
    expansion_job = partial(
        role_scores, rows, role="expansion", rule_score=pqa["pqa_score"], **common
    )
    if PARALLEL_ROLES and len(rows) < PARALLEL_ROWS and bundle.churn and bundle.expansion:
        # A few rows: both models' TreeSHAP (the GIL released) on two cores at once halves the
        # latency; a batch instead gives each LightGBM call every core.
        pending = _role_pool().submit(expansion_job)
        churn = role_scores(rows, role="churn", rule_score=health["health_score"], **common)
        expansion = pending.result()
    else:
        churn = role_scores(rows, role="churn", rule_score=health["health_score"], **common)
        expansion = expansion_job()
    plays = plays_for(
        rules_part,
        churn_probability=churn.probability,
        expansion_probability=expansion.probability,
        config=rules,
    )
    renewal = renewal_status(
        rows, health_band=health["health_band"], churn_probability=churn.probability, config=rules
    )
    return [
        _payload(
            rows,
            i,
            bundle=bundle,
            rules_part=rules_part,
            churn=churn,
            expansion=expansion,
            play=plays[i],
            renewal=renewal,
        )
        for i in range(len(rows))
    ]


PARALLEL_ROLES = True


@lru_cache(maxsize=1)
def _role_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="nrr-role")


def _payload(
    rows: Rows,
    i: int,
    *,
    bundle: ModelBundle,
    rules_part: RuleAssessment,
    churn: RoleScores,
    expansion: RoleScores,
    play: Play,
    renewal: dict[str, np.ndarray],
) -> dict[str, Any]:
    row = rows.row(i) if isinstance(rows, Table) else rows.iloc[i]
    h = {name: values[i] for name, values in rules_part.health.items()}
    q = {name: values[i] for name, values in rules_part.pqa.items()}
    notes = [
        f"{role} probability unavailable: no model and no fallback calibration"
        for role, p in (("churn", churn.probability[i]), ("expansion", expansion.probability[i]))
        if p is None
    ]
    notes.extend(_missing_notes((churn, expansion), i))
    return {
        "account_id": str(row["account_id"]),
        "as_of": _timestamp(row["as_of"]),
        "source": combined_source([churn.from_model[i], expansion.from_model[i]]),
        "churn_source": "model" if churn.from_model[i] else "rules",
        "expansion_source": "model" if expansion.from_model[i] else "rules",
        "fallback_reason": fallback_reason((churn, expansion), i, bundle),
        "churn_probability": churn.probability[i],
        "expansion_probability": expansion.probability[i],
        "probability_note": "; ".join(notes) or None,
        "health_score": _num(h["health_score"]),
        "health_band": _str(h["health_band"]),
        "health_categories": {
            c.removeprefix("health_"): _num(h[c]) for c in _category_columns(list(h))
        },
        "health_missing": [str(s) for s in (_list(h.get("health_missing")))],
        "health_detractors": [str(s) for s in (_list(h.get("health_detractors")))],
        "health_change": _num(h.get("health_change")),
        # numpy and pandas booleans are not `True`; a missing alert (no history) is False
        "health_alert": _flag(h.get("health_alert")),
        "pqa_score": _num(q["pqa_score"]),
        "pqa_band": _str(q.get("pqa_band")),
        "drivers": churn.drivers[i],
        "context": churn.context[i] if churn.context else [],
        "expansion_drivers": expansion.drivers[i],
        "expansion_context": expansion.context[i] if expansion.context else [],
        "signals": [_rule_dict(r) for r in rules_part.risks(i)],
        "triggers": [_rule_dict(r) for r in rules_part.triggers(i)],
        "play": {
            "intervention": play.intervention,
            "response_time": play.response_time,
            "expansion_play": play.expansion_play,
            "reason": play.reason,
        },
        "renewal": _renewal_payload(renewal, i),
        "model_versions": {
            "churn": bundle.versions.get("churn"),
            "expansion": bundle.versions.get("expansion"),
        },
    }


def _missing_notes(roles: Sequence[RoleScores], i: int) -> list[str]:
    """What the models scored row i without: features with no value, unknown categories."""
    answered = [r for r in roles if r.from_model[i]]
    valueless = [f for r in answered if r.missing for f in r.missing[i]]
    unknown = [u for r in answered if r.unknown for u in r.unknown[i]]
    notes = []
    if valueless:
        names = ", ".join(dict.fromkeys(valueless))
        notes.append(f"missing features (not sent or null), scored as missing values: {names}")
    if unknown:
        values = ", ".join(dict.fromkeys(unknown))
        notes.append(f"categories the models were not trained on, scored as missing: {values}")
    return notes


def _flag(value: Any) -> bool:
    return False if value is None or value is pd.NA else bool(value)


_HEALTH_NON_CATEGORY = {
    "health_score",
    "health_band",
    "health_missing",
    "health_detractors",
    "health_change",
    "health_alert",
}


def _category_columns(columns: Sequence[str]) -> list[str]:
    return [c for c in columns if c.startswith("health_") and c not in _HEALTH_NON_CATEGORY]


def _renewal_payload(renewal: dict[str, np.ndarray], i: int) -> dict[str, Any]:
    """Row i of `models.rules.renewals.renewal_status` as the `Renewal` schema."""
    tier = renewal["alert_days"][i]
    days = float(renewal["days_left"][i])
    return {
        "renewal_at": _timestamp(renewal["renewal_at"][i]),
        "days_to_renewal": None if math.isnan(days) else int(days),
        "arr_at_stake": _num(renewal["arr"][i]),
        "high_risk": bool(renewal["high_risk"][i]),
        "alert": None if math.isnan(tier) else f"{int(tier)} days",
        "month_to_month": bool(renewal["month_to_month"][i]),
        "csm_owner": renewal["csm_owner"][i],
        "unowned": bool(renewal["unowned"][i]),
    }


def _rule_dict(rule: Any) -> dict[str, Any]:
    evidence = {str(k): _jsonable(v) for k, v in dict(rule.evidence).items()}
    return {"name": rule.name, "kind": rule.kind, "text": rule.text, "evidence": evidence}


def _num(value: Any) -> float | None:
    out = _jsonable(value)
    return out if isinstance(out, float) else None


def _str(value: Any) -> str | None:
    return (
        None
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
        else str(value)
    )


def _list(value: Any) -> list[Any]:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return []
    return list(value)


def score_snapshots(
    rows: pd.DataFrame,
    *,
    bundle: ModelBundle,
    rules: Any,
    drivers_k: int,
    previous: pd.DataFrame | None = None,
    earlier: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Flat table of scores (one row per input row) for files and reports."""
    payloads = score_payloads(
        rows, bundle=bundle, rules=rules, drivers_k=drivers_k, previous=previous, earlier=earlier
    )
    return flatten_payloads(payloads, drivers_k=drivers_k)


def flatten_payloads(payloads: Sequence[dict[str, Any]], *, drivers_k: int) -> pd.DataFrame:
    """The payloads as flat columns: scalars, rule names joined by ';', drivers numbered."""
    records = []
    for p in payloads:
        rec = {k: p[k] for k in _FLAT_SCALARS}
        rec["signals"] = ";".join(r["name"] for r in p["signals"])
        rec["triggers"] = ";".join(r["name"] for r in p["triggers"])
        rec["health_change"] = p["health_change"]
        rec["play"] = p["play"]["intervention"]
        rec["response_time"] = p["play"]["response_time"]
        rec["expansion_play"] = p["play"]["expansion_play"]
        renewal = p["renewal"] or {}
        rec["month_to_month"] = renewal.get("month_to_month")
        rec["days_to_renewal"] = renewal.get("days_to_renewal")
        rec["renewal_alert"] = renewal.get("alert")
        rec["churn_model_version"] = p["model_versions"]["churn"]
        rec["expansion_model_version"] = p["model_versions"]["expansion"]
        for j in range(drivers_k):
            d = p["drivers"][j] if j < len(p["drivers"]) else {}
            rec[f"driver_{j + 1}_feature"] = d.get("feature")
            rec[f"driver_{j + 1}_contribution"] = d.get("contribution")
            rec[f"driver_{j + 1}_text"] = d.get("text")
        for j in range(drivers_k):
            c = p["context"][j] if j < len(p.get("context", [])) else {}
            rec[f"context_{j + 1}_feature"] = c.get("feature")
            rec[f"context_{j + 1}_text"] = c.get("text")
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    if not frame.empty:
        frame["as_of"] = pd.to_datetime(frame["as_of"])
    return frame


_FLAT_SCALARS = (
    "account_id",
    "as_of",
    "churn_probability",
    "expansion_probability",
    "health_score",
    "health_band",
    "pqa_score",
    "pqa_band",
    "source",
    "churn_source",
    "expansion_source",
    "fallback_reason",
)
