"""Roadmap input: the book's churn drivers and expansion blockers weighted by ARR, and the
metric audit (metrics with no association to renewal or expansion: vanity metrics).

Drivers: per account, the champion's TreeSHAP contributions (models.scoring, the same
numbers as the API's drivers) summed over the features of one signal (the registry's
display group), times the account's ARR, averaged over the book at the latest snapshot.
A churn driver is a contribution that raises churn; an expansion blocker one that lowers
expansion. Audit: each metric's univariate ROC-AUC for churn and for expansion on the
labelled snapshots, with an interval from a bootstrap over accounts; a metric is a vanity
metric when both intervals contain 0.5 (no association either way).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.registry import FEATURES, display
from models.scoring.booster import ScoringModel

CHANCE = 0.5


@dataclass(frozen=True)
class AuditSettings:
    """Which labelled rows the audit reads and how many bootstrap draws."""

    months: int = 12  # the latest labelled month starts
    draws: int = 200
    level: float = 0.95
    seed: int = 0


def signal_contributions(model: ScoringModel, rows: pd.DataFrame) -> pd.DataFrame:
    """rows x signals: each account's contribution (log-odds) summed over a signal's features."""
    contrib = model.contributions(rows)[:, :-1]
    names = list(model.feature_names)
    groups: dict[str, list[int]] = {}
    for j, name in enumerate(names):
        groups.setdefault(display(name).group, []).append(j)
    return pd.DataFrame(
        {group: contrib[:, members].sum(axis=1) for group, members in groups.items()},
        index=rows.index,
    )


def _signal_labels(model: ScoringModel) -> dict[str, tuple[str, str, bool]]:
    """signal -> (label of its first feature, its features, whether it is a contract fact)."""
    out: dict[str, tuple[str, list[str], bool]] = {}
    for name in model.feature_names:
        d = display(name)
        label, members, context = out.get(d.group, (d.label, [], d.context))
        out[d.group] = (label, [*members, name], context)
    return {g: (label, ", ".join(m), c) for g, (label, m, c) in out.items()}


def arr_weighted(model: ScoringModel, rows: pd.DataFrame, *, sign: int) -> pd.DataFrame:
    """Per signal: mean |contribution| x ARR, and the mean of the part pushing the way of
    `sign` (+1: raises the model's outcome, -1: lowers it) x ARR, with its share."""
    book = rows[rows["arr"].fillna(0) > 0]
    signals = signal_contributions(model, book)
    arr = book["arr"].to_numpy(dtype=float)[:, None]
    values = signals.to_numpy()
    pushing = np.maximum(sign * values, 0.0)
    labels = _signal_labels(model)
    out = pd.DataFrame(
        {
            "signal": signals.columns,
            "label": [labels[g][0] for g in signals.columns],
            "features": [labels[g][1] for g in signals.columns],
            "contract_fact": [labels[g][2] for g in signals.columns],
            "mean_abs_shap_x_arr": (np.abs(values) * arr).mean(axis=0),
            "mean_pushing_x_arr": (pushing * arr).mean(axis=0),
            "accounts_pushed": (pushing > 0).sum(axis=0),
        }
    )
    actionable = ~out["contract_fact"]
    total = out.loc[actionable, "mean_pushing_x_arr"].sum()
    out["share"] = np.where(actionable, out["mean_pushing_x_arr"] / total if total else 0, np.nan)
    ranked = out.sort_values(["contract_fact", "mean_pushing_x_arr"], ascending=[True, False])
    return ranked.reset_index(drop=True)


def _boot_weights(accounts: np.ndarray, settings: AuditSettings) -> tuple[np.ndarray, np.ndarray]:
    codes, index = np.unique(accounts, return_inverse=True)
    rng = np.random.default_rng(settings.seed)
    draws = rng.multinomial(codes.size, np.full(codes.size, 1.0 / codes.size), settings.draws)
    # the point estimate first (every account once), then the bootstrap draws
    weights = np.vstack([np.ones(codes.size), draws]).astype(np.float32)
    return weights, index


def weighted_auc(x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC-AUC of score x for labels y under each row of row weights (draws x rows); ties
    count one half (Mann-Whitney)."""
    order = np.argsort(x, kind="stable")
    xs, ys, w = x[order], y[order].astype(np.float32), weights[:, order]
    starts = np.flatnonzero(np.r_[True, xs[1:] != xs[:-1]])
    pos = np.add.reduceat(w * ys, starts, axis=1)
    neg = np.add.reduceat(w * (1.0 - ys), starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(divide="ignore", invalid="ignore"):
        return (pos * (below + 0.5 * neg)).sum(axis=1) / (pos.sum(axis=1) * neg.sum(axis=1))


def audit_rows(snapshots: pd.DataFrame, settings: AuditSettings) -> pd.DataFrame:
    """The labelled rows of the latest `months` labelled snapshot dates."""
    labelled = snapshots[snapshots["labelled"].fillna(False).astype(bool)]
    dates = np.sort(labelled["as_of"].unique())[-settings.months :]
    return labelled[labelled["as_of"].isin(dates)].reset_index(drop=True)


def metric_audit(snapshots: pd.DataFrame, settings: AuditSettings | None = None) -> pd.DataFrame:
    """Per numeric metric of the registry found in the snapshots: AUC and interval for churn
    and expansion, and whether it is a vanity metric."""
    settings = settings or AuditSettings()
    rows = audit_rows(snapshots, settings)
    weights, index = _boot_weights(rows["account_id"].astype(str).to_numpy(), settings)
    tail = (1.0 - settings.level) / 2.0
    records: list[dict[str, Any]] = []
    for spec in FEATURES:
        if spec.kind == "category" or spec.name not in rows:
            continue
        x = pd.to_numeric(rows[spec.name], errors="coerce").to_numpy(dtype=float)
        known = np.isfinite(x)
        if known.sum() < 50 or np.unique(x[known]).size < 2:
            continue
        record: dict[str, Any] = {
            "metric": spec.name,
            "label": display(spec.name).label,
            "family": spec.family,
            "rows": int(known.sum()),
        }
        for target, short in (("churned", "churn"), ("expanded", "expansion")):
            y = rows[target].astype(bool).to_numpy()[known]
            auc = weighted_auc(x[known], y, weights[:, index[known]])
            point, boot = float(auc[0]), auc[1:][np.isfinite(auc[1:])]
            record[f"{short}_auc"] = point
            record[f"{short}_auc_low"] = float(np.quantile(boot, tail)) if boot.size else np.nan
            record[f"{short}_auc_high"] = (
                float(np.quantile(boot, 1 - tail)) if boot.size else np.nan
            )
        records.append(record)
    out = pd.DataFrame(records)
    if out.empty:
        return out
    contains = [
        (out[f"{s}_auc_low"] <= CHANCE) & (out[f"{s}_auc_high"] >= CHANCE)
        for s in ("churn", "expansion")
    ]
    out["vanity"] = contains[0] & contains[1]
    out["strength"] = np.maximum(abs(out["churn_auc"] - CHANCE), abs(out["expansion_auc"] - CHANCE))
    return out.sort_values(["vanity", "strength"], ascending=[False, True]).reset_index(drop=True)


@dataclass(frozen=True)
class Roadmap:
    """What `nrr roadmap` writes and GET /v1/roadmap serves."""

    as_of: pd.Timestamp
    accounts: int
    book_arr: float
    churn_drivers: pd.DataFrame | None
    expansion_blockers: pd.DataFrame | None
    audit: pd.DataFrame | None
    audit_rows: int
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        def records(frame: pd.DataFrame | None) -> list[dict[str, Any]] | None:
            if frame is None:
                return None
            # through JSON: plain Python numbers, NaN as null (json.dumps rejects numpy types)
            rows: list[dict[str, Any]] = json.loads(frame.to_json(orient="records"))
            return rows

        return {
            "as_of": self.as_of.isoformat(),
            "accounts": self.accounts,
            "book_arr": self.book_arr,
            "churn_drivers": records(self.churn_drivers),
            "expansion_blockers": records(self.expansion_blockers),
            "metric_audit": records(self.audit),
            "audit_rows": self.audit_rows,
            "note": self.note,
        }


def build_roadmap(
    snapshots: pd.DataFrame,
    *,
    churn: ScoringModel | None,
    expansion: ScoringModel | None,
    audit: AuditSettings | None = None,
) -> Roadmap:
    """Drivers on the latest snapshot's book and the audit on the labelled snapshots."""
    as_of = pd.Timestamp(snapshots["as_of"].max())
    book = snapshots[(snapshots["as_of"] == as_of) & (snapshots["arr"].fillna(0) > 0)]
    book = book.reset_index(drop=True)
    labelled = "labelled" in snapshots and bool(snapshots["labelled"].fillna(False).any())
    audit = audit or AuditSettings()
    table = metric_audit(snapshots, audit) if labelled else None
    notes = [] if labelled else ["no labelled snapshots: no metric audit"]
    if churn is None or expansion is None:
        notes.append("no trained model: no drivers (the rules fallback has no SHAP values)")
    return Roadmap(
        as_of=as_of,
        accounts=len(book),
        book_arr=float(book["arr"].sum()),
        churn_drivers=None if churn is None else arr_weighted(churn, book, sign=1),
        expansion_blockers=None if expansion is None else arr_weighted(expansion, book, sign=-1),
        audit=table,
        audit_rows=len(audit_rows(snapshots, audit)) if labelled else 0,
        note="; ".join(notes),
    )
