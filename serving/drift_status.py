"""Drift of the served snapshots against each served model's training data, shown by /readyz.

Computed once per state build (start and reload), never per request.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from models.monitoring.drift import DriftReference, population_stability, summarise
from serving.registry_client import ROLES, ModelBundle

log = logging.getLogger(__name__)

DriftSummaries = dict[str, dict[str, Any] | None]


def drift_status(
    bundle: ModelBundle, snapshots: pd.DataFrame
) -> tuple[DriftSummaries | None, str | None]:
    """Per served role, the PSI summary of `snapshots` vs the model's reference; and why not.

    None (with the reason) when no role could be checked: no snapshots loaded, no model
    served, or models registered without a drift reference.
    """
    if snapshots.empty:
        return None, "no snapshots loaded"
    summaries: DriftSummaries = {}
    reasons: list[str] = []
    for role in ROLES:
        summaries[role], reason = _role_drift(bundle, role, snapshots)
        if reason is not None:
            reasons.append(f"{role}: {reason}")
    reason_text = "; ".join(reasons) or None
    if all(value is None for value in summaries.values()):
        return None, reason_text
    return summaries, reason_text


def _role_drift(
    bundle: ModelBundle, role: str, snapshots: pd.DataFrame
) -> tuple[dict[str, Any] | None, str | None]:
    if bundle.model(role) is None:
        return None, "no model served"
    raw = bundle.drift_references.get(role)
    if raw is None:
        version = bundle.versions.get(role)
        return None, f"model v{version} was registered without a drift reference"
    try:
        table = population_stability(DriftReference.from_dict(raw), snapshots)
    except Exception as exc:  # drift is information: it must never stop the models serving
        log.warning("drift check of %s failed: %s", role, exc)
        return None, f"drift check failed: {exc}"
    as_of = pd.to_datetime(snapshots["as_of"]).max() if "as_of" in snapshots.columns else None
    return {
        "as_of": None if as_of is None or pd.isna(as_of) else str(as_of.date()),
        "rows": len(snapshots),
        **summarise(table),
    }, None
