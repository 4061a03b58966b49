"""The HTTP endpoints: scores, worklist, renewals, probes, metrics and reload."""

from __future__ import annotations

import logging
import os
from typing import Annotated, Any

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool

from features.registry import FEATURES
from models.table import Table
from serving.lifecycle import reload_state
from serving.request_context import request_context
from serving.schemas import (
    ApiError,
    Liveness,
    Readiness,
    ReloadResult,
    RenewalKind,
    RenewalsResponse,
    Score,
    ScoreRequest,
    ScoreResponse,
    SortKey,
    WorklistPage,
)
from serving.security import KeyStore, Role, Verdict, allows
from serving.settings import ServingSettings
from serving.state import ServingState

log = logging.getLogger(__name__)
router = APIRouter()
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="key from `nrr apikey`")

_AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ApiError, "description": "missing or wrong X-API-Key"},
    403: {"model": ApiError, "description": "the key's role may not do this"},
    429: {
        "model": ApiError,
        "description": "too many failed key attempts from this client or for this key id; "
        "see the Retry-After header (a correct key is never refused this way)",
    },
}
_UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ApiError, "description": "nothing loaded yet (see /readyz)"},
}
_JSON = "application/json"


# The dependencies are `async def` on purpose: FastAPI runs a sync dependency in the
# threadpool, and those hops cost more than the whole answer of a precomputed score.


async def get_settings_dep(request: Request) -> ServingSettings:
    settings: ServingSettings = request.app.state.settings
    return settings


def _refusal(request: Request, verdict: Verdict) -> HTTPException:
    """Count a refused key in /metrics and build its 401 or 429 (with Retry-After)."""
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        if verdict.slow:
            metrics.count_legacy_check(ok=False)
        metrics.count_auth_refusal(verdict.reason, verdict.throttled)
    if verdict.retry_after:
        return HTTPException(
            429,
            f"too many failed API key attempts; retry after {verdict.retry_after} s",
            {"Retry-After": str(verdict.retry_after)},
        )
    return HTTPException(401, "missing or invalid X-API-Key", {"WWW-Authenticate": "ApiKey"})


def _client(request: Request) -> str | None:
    return request.client.host if request.client else None


def _accepted(request: Request, verdict: Verdict) -> Role | None:
    if verdict.slow and verdict.role is not None:
        metrics = getattr(request.app.state, "metrics", None)
        if metrics is not None:
            metrics.count_legacy_check(ok=True)
    return verdict.role


async def require_reader(request: Request, key: Annotated[str | None, Depends(_api_key)]) -> Role:
    if not request.app.state.settings.auth_enabled:
        return "admin"
    keys: KeyStore = request.app.state.keys
    if keys.needs_slow_path(key):
        # Only a legacy (scrypt) key id not yet proven in this process, within a budget
        # (security.KeyStore): off the event loop. Everything else is a SHA-256 here.
        verdict = await run_in_threadpool(keys.authenticate, key, _client(request))
    else:
        verdict = keys.authenticate(key, _client(request))
    role = _accepted(request, verdict)
    if role is None:
        refusal = _refusal(request, verdict)
        if verdict.retry_after:
            # A timer, not CPU: a flood that waits for its answers slows to its
            # connections per second (security.Tarpit).
            await keys.tarpit.hold(verdict.retry_after)
        raise refusal
    return role


def check_reader(request: Request, key: str | None) -> Role:
    """`require_reader` for sync endpoints (already in the threadpool, so scrypt may block;
    no tarpit, which would hold a worker thread)."""
    if not request.app.state.settings.auth_enabled:
        return "admin"
    verdict = request.app.state.keys.authenticate(key, _client(request))
    role = _accepted(request, verdict)
    if role is None:
        raise _refusal(request, verdict)
    return role


async def require_admin(request: Request, key: Annotated[str | None, Depends(_api_key)]) -> Role:
    role = await require_reader(request, key)
    if not allows(role, "admin"):
        raise HTTPException(403, "this endpoint needs an admin key")
    return role


async def get_state(request: Request) -> ServingState:
    state: ServingState | None = request.app.state.holder.current
    if state is None:
        reason = request.app.state.holder.error or "still loading"
        raise HTTPException(503, f"not serving: {reason}")
    return state


Reader = Annotated[Role, Depends(require_reader)]
Admin = Annotated[Role, Depends(require_admin)]
State = Annotated[ServingState, Depends(get_state)]
Settings = Annotated[ServingSettings, Depends(get_settings_dep)]


@router.get("/healthz", response_model=Liveness, tags=["probes"])
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    response_model=Readiness,
    tags=["probes"],
    responses={
        503: {"model": Readiness, "description": "still loading, or nothing could be loaded"}
    },
)
async def readyz(request: Request, response: Response) -> dict[str, Any]:
    """Readiness: `ready` with model versions, `degraded` without snapshots, `fallback` with
    the reason; 503 `loading` until the first load ends, 503 `unavailable` if nothing loads."""
    holder = request.app.state.holder
    body = readiness(holder.current, holder.error, loading=holder.loading)
    body.update(worker(request.app))
    if body["status"] in ("loading", "unavailable"):
        response.status_code = 503
    return body


def worker(app: Any) -> dict[str, Any]:
    """Which worker answered and which reload generation it serves (serving.replicas)."""
    replicas = getattr(app.state, "replicas", None)
    return {"worker_pid": os.getpid(), "generation": replicas.generation if replicas else None}


def readiness(
    state: ServingState | None, error: str | None, *, loading: bool = False
) -> dict[str, Any]:
    """The `Readiness` body of a state (None: nothing loaded, `error` says why)."""
    if state is None:
        status = "loading" if loading and error is None else "unavailable"
        return {
            "status": status,
            "fallback_reason": error or "still loading",
            "model_versions": {"churn": None, "expansion": None},
            "snapshots_as_of": None,
            "accounts": 0,
            "loaded_at": None,
            "drift": None,
            "drift_reason": "nothing loaded",
            "degraded_reason": None,
        }
    status = state.status
    if status == "ready" and state.degraded_reason:
        status = "degraded"
    return {
        "status": status,
        "fallback_reason": state.bundle.fallback_reason,
        "model_versions": dict(state.bundle.versions),
        "snapshots_as_of": None if state.as_of is None else state.as_of.to_pydatetime(),
        "accounts": len(state.encoded),
        "loaded_at": state.loaded_at,
        "drift": state.drift,
        "drift_reason": state.drift_reason,
        "degraded_reason": state.degraded_reason,
    }


_METRICS_EXAMPLE = """\
# HELP nrr_http_requests_total HTTP requests by route template, method and status
# TYPE nrr_http_requests_total counter
nrr_http_requests_total{method="GET",route="/v1/accounts/{account_id}/score",status="200"} 1532.0
# HELP nrr_fallback_scores_total scores answered from the rules instead of a model, by reason
# TYPE nrr_fallback_scores_total counter
nrr_fallback_scores_total{reason="model not registered"} 3.0
# HELP nrr_model_info served model versions (value 1); version 'none' when in fallback
# TYPE nrr_model_info gauge
nrr_model_info{model="churn",source="model",version="4"} 1.0
"""


@router.get(
    "/metrics",
    tags=["probes"],
    response_class=Response,
    responses={200: {"content": {"text/plain": {"example": _METRICS_EXAMPLE}}}},
)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests and latencies per route, fallbacks, model versions."""
    m = request.app.state.metrics
    return Response(m.render(), media_type=m.content_type)


@router.get("/v1/ping", response_model=Liveness, tags=["probes"], responses=_AUTH_ERRORS)
async def ping(role: Reader) -> dict[str, str]:
    """Authenticated no-op: the framework's ceiling for benchmarks."""
    return {"status": "ok"}


@router.get(
    "/v1/accounts/{account_id}/score",
    response_model=Score,
    tags=["scores"],
    responses={
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
        404: {"model": ApiError, "description": "unknown account"},
    },
)
async def account_score(
    role: Reader,
    state: State,
    request: Request,
    account_id: Annotated[str, Path(min_length=1, max_length=200)],
) -> Response:
    """An account's score from its latest snapshot (precomputed at load)."""
    body = state.encoded.get(account_id)
    if body is None:
        raise HTTPException(404, f"unknown account {account_id!r}")
    if b'"source":"model"' not in body:  # "rules" or "mixed": at least one model fell back
        request.app.state.metrics.count_fallbacks("snapshot")
    return Response(body, media_type=_JSON)


@router.post(
    "/v1/score",
    response_model=ScoreResponse,
    tags=["scores"],
    responses={
        **_AUTH_ERRORS,
        **_UNAVAILABLE,
        413: {"model": ApiError, "description": "body too large"},
        422: {"model": ApiError, "description": "invalid field (named in details)"},
    },
)
async def score(
    body: ScoreRequest, role: Reader, state: State, settings: Settings, request: Request
) -> Response:
    """Score accounts from features the caller computed (up to the batch size limit)."""
    if len(body.accounts) > settings.max_batch_size:
        raise HTTPException(
            413, f"{len(body.accounts)} accounts; at most {settings.max_batch_size} per request"
        )
    rows, provided = request_rows(body)
    k = state.drivers_k if body.drivers else 0
    context = request_context(state.served, state.peers, rows["account_id"], rows["as_of"])
    payloads = await run_in_threadpool(
        state.scorer,
        rows,
        bundle=state.bundle,
        rules=state.rules,
        drivers_k=k,
        provided=provided,
        previous=context.previous,
        earlier=context.earlier,
        peers=context.peers,
    )
    fallbacks = sum(p["source"] != "model" for p in payloads)
    request.app.state.metrics.count_fallbacks("request", fallbacks)
    out = ScoreResponse.model_validate({"scores": payloads})
    return Response(out.model_dump_json(), media_type=_JSON)


_NUMERIC = [spec.name for spec in FEATURES if spec.kind != "category"]
_CATEGORY = [spec.name for spec in FEATURES if spec.kind == "category"]


def request_rows(body: ScoreRequest) -> tuple[Table, Table]:
    """Snapshot-shaped rows of a request, and which features each caller actually sent.

    Plain arrays, not DataFrames: pandas' per-column overhead was most of a one-account request.
    """
    accounts = body.accounts
    n = len(accounts)
    values = [a.features.model_dump(exclude_unset=True) for a in accounts]  # type: ignore[attr-defined]
    names = _NUMERIC + _CATEGORY
    sent = np.array([[name in v for name in names] for v in values], dtype=bool).reshape(n, -1)
    provided = Table({name: sent[:, j] for j, name in enumerate(names)}, n)
    # One float block instead of a column at a time.
    numeric = np.array([[v.get(c) for c in _NUMERIC] for v in values], dtype=float).reshape(n, -1)
    columns: dict[str, np.ndarray] = {
        "account_id": _objects([a.account_id for a in accounts]),
        # pd.Timestamp / NaT, as a DataFrame row of snapshots would hold them.
        "as_of": _objects([pd.Timestamp(a.as_of) for a in accounts]),
        "csm_owner": _objects([a.csm_owner for a in accounts]),
        "renewal_at": _objects([pd.Timestamp(a.renewal_at) for a in accounts]),
    }
    for name in _CATEGORY:
        columns[name] = _objects([v.get(name) for v in values])
    columns.update({name: numeric[:, j] for j, name in enumerate(_NUMERIC)})
    return Table(columns, n), provided


def _objects(items: list[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@router.get(
    "/v1/accounts",
    response_model=WorklistPage,
    tags=["worklist"],
    responses={**_AUTH_ERRORS, **_UNAVAILABLE},
)
async def worklist(
    role: Reader,
    state: State,
    settings: Settings,
    band: Annotated[str | None, Query(max_length=100, description="health band")] = None,
    owner: Annotated[str | None, Query(max_length=200, description="CSM owner")] = None,
    segment: Annotated[str | None, Query(max_length=100)] = None,
    signal: Annotated[str | None, Query(max_length=100, description="fired signal name")] = None,
    sort: Annotated[SortKey, Query()] = "churn_probability",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=10_000)] = 50,
) -> dict[str, Any]:
    """The CSM worklist: filter by band, owner, segment or signal; sorted; paginated."""
    size = min(page_size, settings.max_page_size)
    items = [
        item
        for item in state.worklist
        if (band is None or item["health_band"] == band)
        and (owner is None or item["csm_owner"] == owner)
        and (segment is None or item["segment"] == segment)
        and (signal is None or signal in item["signals"] or signal in item["triggers"])
    ]
    # Highest first, except health where the weakest accounts lead; unknowns always last.
    sign = 1.0 if sort == "health_score" else -1.0
    items.sort(key=lambda it: (it[sort] is None, sign * (it[sort] or 0.0), it["account_id"]))
    start = (page - 1) * size
    return {
        "items": items[start : start + size],
        "total": len(items),
        "page": page,
        "page_size": size,
        "sort": sort,
        "as_of": None if state.as_of is None else state.as_of.to_pydatetime(),
    }


@router.get(
    "/v1/renewals",
    response_model=RenewalsResponse,
    tags=["worklist"],
    responses={**_AUTH_ERRORS, **_UNAVAILABLE},
)
async def renewals(
    role: Reader,
    state: State,
    settings: Settings,
    within_days: Annotated[int, Query(ge=0, le=3650)] = 90,
    kind: Annotated[
        RenewalKind,
        Query(
            description="`committed`: annual and multi-year terms renewing within "
            "`within_days`, soonest first; `monthly`: month-to-month accounts at high risk "
            "(no renewal date: they can leave at any month end), highest churn probability "
            "first (`within_days` does not apply)"
        ),
    ] = "committed",
) -> dict[str, Any]:
    """Committed renewals within `within_days`, or the monthly-at-risk view (`kind=monthly`)."""
    from models.rules.renewals import renews_within

    if within_days > settings.max_renewal_days:
        raise HTTPException(422, f"within_days must be at most {settings.max_renewal_days}")
    if kind == "monthly":
        items = [r for r in state.renewals if r["month_to_month"] and r["high_risk"]]
        items.sort(
            key=lambda r: (
                r["churn_probability"] is None,
                -(r["churn_probability"] or 0.0),
                r["health_score"] if r["health_score"] is not None else 101.0,
                r["account_id"],
            )
        )
    else:
        items = [
            r
            for r in state.renewals
            if not r["month_to_month"]
            and r["days_to_renewal"] is not None
            and renews_within(r["days_to_renewal"], within_days)
        ]
        items.sort(key=lambda r: (r["days_to_renewal"], r["account_id"]))
    return {
        "as_of": None if state.as_of is None else state.as_of.to_pydatetime(),
        "within_days": within_days,
        "kind": kind,
        "items": items,
    }


@router.post(
    "/v1/admin/reload",
    response_model=ReloadResult,
    tags=["admin"],
    responses=_AUTH_ERRORS,
)
async def reload(role: Admin, request: Request) -> dict[str, Any]:
    """Re-read the API keys file, then re-resolve the alias, check and precompute aside, and
    swap; a failure keeps the old state (and a keys file that does not parse, the old keys)."""
    app = request.app
    keys = _reload_keys(app)
    reason = await reload_state(app)
    if reason is None and (replicas := getattr(app.state, "replicas", None)) is not None:
        replicas.published(app)  # the other workers follow (serving.replicas)
    status = "reloaded" if reason is None else "failed"
    serving = {**_serving(app.state.holder), **worker(app)}
    return {"status": status, "reason": reason, "serving": serving, **keys}


def _reload_keys(app: Any) -> dict[str, Any]:
    """Re-read the keys file (even unchanged); what ReloadResult says about the keys."""
    watcher = getattr(app.state, "key_watcher", None)
    if not app.state.settings.auth_enabled or watcher is None:
        return {"api_keys": None, "keys_error": None}
    watcher.refresh(force=True)
    return {"api_keys": len(app.state.keys), "keys_error": watcher.error}


def _serving(holder: Any) -> dict[str, Any]:
    return readiness(holder.current, holder.error, loading=holder.loading)
