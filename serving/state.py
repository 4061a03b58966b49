"""What the API serves: models, rules and precomputed scores, built whole and swapped at once."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from features.registry import BY_NAME
from models.scoring.comparison import COMPARISON_DAYS, comparison_gap_ok
from models.table import Table
from serving.registry_client import ModelBundle
from serving.request_context import ServedBook, served_rows
from serving.schemas import Score
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from models.scoring.drivers import Peers

log = logging.getLogger(__name__)


class Scorer(Protocol):
    """Rows are a snapshot DataFrame (precompute) or a `Table` (POST /v1/score requests)."""

    def __call__(
        self,
        rows: pd.DataFrame | Table,
        *,
        bundle: ModelBundle,
        rules: Any,
        drivers_k: int,
        provided: pd.DataFrame | Table | None = None,
        previous: pd.DataFrame | None = None,
        earlier: pd.DataFrame | None = None,
        peers: pd.DataFrame | Table | Peers | None = None,
    ) -> list[dict[str, Any]]: ...


class StateError(RuntimeError):
    """A state could not be built; the message says why."""


@dataclass(frozen=True)
class ServingState:
    """One consistent generation of everything served; never mutated, only replaced."""

    bundle: ModelBundle
    rules: Any
    scorer: Scorer
    drivers_k: int
    as_of: pd.Timestamp | None = None
    encoded: dict[str, bytes] = field(default_factory=dict)
    worklist: list[dict[str, Any]] = field(default_factory=list)
    renewals: list[dict[str, Any]] = field(default_factory=list)
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    # PSI summary per role of the served snapshots vs training data (serving.drift_status).
    drift: dict[str, Any] | None = None
    drift_reason: str | None = None
    # The served rows of every date held (serving.request_context): POSTed rows of served
    # accounts get their health_change, "90 days ago" and book percentiles from them.
    served: ServedBook = field(default_factory=lambda: served_rows([]))
    # models.scoring.drivers.Peers of the served book: percentiles of POSTed rows among it,
    # its sorted values computed once (precompute fills most of them) instead of per request
    peers: Peers | None = None
    # Why this state serves less than it should although it loaded (no snapshots): /readyz
    # then says "degraded" instead of "ready".
    degraded_reason: str | None = None

    @property
    def status(self) -> str:
        return "fallback" if self.bundle.fallback_reason else "ready"


class StateHolder:
    """The one reference requests read; reloads build aside and swap it under a lock."""

    def __init__(self) -> None:
        self.current: ServingState | None = None
        self.error: str | None = None
        # True while the first load runs (in the background: /readyz answers 503 "loading").
        self.loading = False
        self.lock = asyncio.Lock()


def latest_snapshots(frame: pd.DataFrame) -> pd.DataFrame:
    """Each account's row at the latest as_of of the file."""
    for column in ("account_id", "as_of"):
        if column not in frame.columns:
            raise StateError(f"snapshots file lacks column {column!r}")
    if frame.empty:
        return frame
    as_of = pd.to_datetime(frame["as_of"])
    latest = frame.loc[as_of == as_of.max()]
    return latest.drop_duplicates("account_id", keep="last").reset_index(drop=True)


def read_snapshots(path: Path) -> pd.DataFrame:
    """The latest snapshot rows of a Parquet file written by `nrr snapshots`."""
    return read_snapshot_history(path).latest


@dataclass(frozen=True)
class SnapshotHistory:
    """The latest rows of a snapshots file and the same accounts' earlier rows.

    `previous`: each account's row at the file's previous snapshot date (health_change and
    the At-risk play); `earlier`: its row at the date closest to 90 days before the latest
    (the drivers' "90 days ago"), None when the file holds no date 60-120 days before.
    """

    latest: pd.DataFrame
    previous: pd.DataFrame | None = None
    earlier: pd.DataFrame | None = None


def snapshot_history(frame: pd.DataFrame) -> SnapshotHistory:
    """Split a snapshots frame into the latest rows and their previous and ~90-day-old rows."""
    latest = latest_snapshots(frame)
    if latest.empty:
        return SnapshotHistory(latest)
    as_of = pd.to_datetime(frame["as_of"])
    last = as_of.max()
    dates = sorted(set(as_of[as_of < last]))
    if not dates:
        return SnapshotHistory(latest)
    ids = set(latest["account_id"].astype(str))

    def rows_at(day: pd.Timestamp) -> pd.DataFrame:
        picked = frame.loc[(as_of == day) & frame["account_id"].astype(str).isin(ids)]
        return picked.drop_duplicates("account_id", keep="last").reset_index(drop=True)

    usable = [d for d in dates if comparison_gap_ok((last - d).days)]
    best = min(usable, key=lambda d: abs((last - d).days - COMPARISON_DAYS), default=None)
    earlier = None if best is None else rows_at(best)
    return SnapshotHistory(latest, rows_at(dates[-1]), earlier)


def read_snapshot_history(path: Path) -> SnapshotHistory:
    """`snapshot_history` of a Parquet file written by `nrr snapshots`."""
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read snapshots {path}: {exc}") from exc
    for column in ("account_id", "as_of"):
        if column not in frame.columns:
            raise StateError(f"snapshots file lacks column {column!r}")
    return snapshot_history(frame)


def check_bundle(bundle: ModelBundle, golden: pd.DataFrame) -> None:
    """Raise StateError unless every loaded model gives finite probabilities on `golden`."""
    for role in ("churn", "expansion"):
        model = bundle.model(role)
        if model is None:
            continue
        frame = golden_input(model.feature_names, golden)
        try:
            proba = np.asarray(model.predict_proba(frame), dtype=float)
            contrib = np.asarray(model.contributions(frame), dtype=float)
        except Exception as exc:  # a model that cannot even predict must never serve
            raise StateError(f"golden check failed for {role}: {exc}") from exc
        if proba.shape != (len(frame),) or not np.all((proba >= 0) & (proba <= 1)):
            raise StateError(f"golden check failed for {role}: probabilities outside [0, 1]")
        if contrib.shape != (len(frame), len(model.feature_names) + 1):
            raise StateError(f"golden check failed for {role}: contributions of wrong shape")


def golden_input(features: tuple[str, ...], sample: pd.DataFrame) -> pd.DataFrame:
    """A few served rows when they carry the model features, else one all-unknown row."""
    if not sample.empty and set(features) <= set(sample.columns):
        return sample.head(5)
    row: dict[str, Any] = {
        f: pd.Series([pd.NA], dtype="string") if BY_NAME[f].kind == "category" else [math.nan]
        for f in features
    }
    return pd.DataFrame(row)


def align_bundle(bundle: ModelBundle, snapshots: pd.DataFrame) -> ModelBundle:
    """Drop a model whose features the served snapshots lack: it would answer no account."""
    if snapshots.empty:
        return bundle
    reasons = [bundle.fallback_reason] if bundle.fallback_reason else []
    changes: dict[str, Any] = {}
    for role in ("churn", "expansion"):
        model = bundle.model(role)
        if model is None:
            continue
        lacking = [f for f in model.feature_names if f not in snapshots.columns]
        if lacking:
            reasons.append(f"feature list mismatch: snapshots lack {role} features {lacking[:5]}")
            changes[role] = None
            changes["versions"] = {**bundle.versions, **changes.get("versions", {}), role: None}
    if not changes:
        return bundle
    return replace(bundle, **changes, fallback_reason="; ".join(reasons))


def build_state(
    settings: ServingSettings,
    *,
    scorer: Scorer,
    load_bundle: Callable[[ServingSettings], ModelBundle],
    load_rules: Callable[[Path | None], Any],
    strict: bool = False,
) -> ServingState:
    """Load rules, models and snapshots, check the models, precompute every account's score.

    strict (reloads): a model failing its golden check fails the build instead of falling back.
    """
    try:
        rules = load_rules(settings.rules_path)
    except Exception as exc:  # without rules nothing can be served
        raise StateError(f"cannot load rules: {exc}") from exc
    history = (
        read_snapshot_history(settings.snapshots_path)
        if settings.snapshots_path
        else SnapshotHistory(pd.DataFrame())
    )
    snapshots = history.latest
    bundle = align_bundle(load_bundle(settings), snapshots)
    try:
        check_bundle(bundle, snapshots)
    except StateError as exc:
        if strict:
            raise
        versions: dict[str, str | None] = {"churn": None, "expansion": None}
        bundle = replace(
            bundle, churn=None, expansion=None, versions=versions, fallback_reason=str(exc)
        )
    if bundle.normaliser is None and not snapshots.empty:
        # No trained anchors: the served population anchors POSTed rows too (one row cannot).
        from models.rules.health import HealthNormaliser

        fitted = HealthNormaliser.fit(snapshots, config=rules).to_dict()
        bundle = replace(bundle, normaliser=fitted)
    base = ServingState(bundle=bundle, rules=rules, scorer=scorer, drivers_k=settings.drivers_k)
    from serving.drift_status import drift_status

    drift, drift_reason = drift_status(bundle, snapshots)
    peers: Peers | None = None
    if not snapshots.empty:
        from models.scoring.drivers import Peers

        peers = Peers(snapshots)
    computed = precompute(
        base, snapshots, previous=history.previous, earlier=history.earlier, peers=peers
    )
    return replace(
        computed,
        served=served_rows([history.latest, history.previous, history.earlier]),
        peers=peers,
        drift=drift,
        drift_reason=drift_reason,
        degraded_reason=snapshots_gap(settings, snapshots),
    )


def snapshots_gap(settings: ServingSettings, snapshots: pd.DataFrame) -> str | None:
    """Why no account is served from precomputed scores, or None when some are."""
    if settings.snapshots_path is None:
        return (
            "no snapshots configured (NRR_SNAPSHOTS_PATH): GET /v1/accounts/{id}/score, "
            "/v1/accounts and /v1/renewals know no account; only POST /v1/score answers"
        )
    if snapshots.empty:
        return f"snapshots file {settings.snapshots_path} holds no rows: no account is served"
    return None


def precompute(
    state: ServingState,
    snapshots: pd.DataFrame,
    *,
    previous: pd.DataFrame | None = None,
    earlier: pd.DataFrame | None = None,
    peers: Peers | None = None,
) -> ServingState:
    """The state with every latest snapshot scored, encoded, and indexed for lists.

    `previous` / `earlier`: the accounts' rows at the previous snapshot date and about 90
    days before (`snapshot_history`), for health_change and the drivers' comparisons.
    """
    if snapshots.empty:
        return state
    payloads = state.scorer(
        snapshots,
        bundle=state.bundle,
        rules=state.rules,
        drivers_k=state.drivers_k,
        previous=previous,
        earlier=earlier,
        peers=peers,
    )
    encoded: dict[str, bytes] = {}
    worklist, renewals = [], []
    for payload, (_, row) in zip(payloads, snapshots.iterrows(), strict=True):
        score = Score.model_validate(payload)
        encoded[score.account_id] = score.model_dump_json().encode()
        worklist.append(worklist_item(payload, row))
        if payload["renewal"] is not None:
            renewals.append(renewal_item(payload))
    as_of = pd.Timestamp(pd.to_datetime(snapshots["as_of"]).max())
    return replace(state, as_of=as_of, encoded=encoded, worklist=worklist, renewals=renewals)


def _opt_str(value: Any) -> str | None:
    return None if value is None or pd.isna(value) else str(value)


def _opt_float(value: Any) -> float | None:
    if value is None or pd.isna(value):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def worklist_item(payload: dict[str, Any], row: pd.Series) -> dict[str, Any]:
    """The CSM worklist entry (the `WorklistItem` schema) of one scored account."""
    arr = _opt_float(row.get("arr"))
    churn = payload["churn_probability"]
    return {
        "account_id": payload["account_id"],
        # the owner as the renewal rules read it: blank or whitespace-only is unowned
        "csm_owner": payload["renewal"]["csm_owner"] if payload["renewal"] else None,
        "segment": _opt_str(row.get("segment")),
        "arr": arr,
        "churn_probability": churn,
        "expansion_probability": payload["expansion_probability"],
        "arr_at_risk": None if arr is None or churn is None else arr * churn,
        "health_score": payload["health_score"],
        "health_band": payload["health_band"],
        "pqa_score": payload["pqa_score"],
        "pqa_band": payload["pqa_band"],
        "signals": [s["name"] for s in payload["signals"]],
        "triggers": [t["name"] for t in payload["triggers"]],
        "source": payload["source"],
        "churn_source": payload["churn_source"],
        "expansion_source": payload["expansion_source"],
    }


def renewal_item(payload: dict[str, Any]) -> dict[str, Any]:
    """The renewal calendar entry (the `RenewalItem` schema) of one scored account.

    Everything renewal-related was computed with the score (`models.rules.renewals`).
    """
    renewal = payload["renewal"]
    return {
        "account_id": payload["account_id"],
        "csm_owner": renewal["csm_owner"],
        "unowned": renewal["unowned"],
        "renewal_at": renewal["renewal_at"],
        "days_to_renewal": renewal["days_to_renewal"],
        "month_to_month": renewal["month_to_month"],
        "arr_at_stake": renewal["arr_at_stake"],
        "health_score": payload["health_score"],
        "health_band": payload["health_band"],
        "churn_probability": payload["churn_probability"],
        "high_risk": renewal["high_risk"],
        "alert": renewal["alert"],
    }
