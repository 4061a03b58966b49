"""The FastAPI application: `create_app(settings)`, its lifespan, limits and error answers."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.lifecycle import KeyFileWatcher, limit_malloc_arenas, start_initial_load
from serving.metrics import MetricsMiddleware, ServingMetrics
from serving.registry_client import ModelBundle, load_bundle
from serving.replicas import RUN_DIR_ENV, replica_sync_for, run_settings
from serving.routes import router
from serving.routes_outcomes import router as outcomes_router
from serving.routes_voice import router as voice_router
from serving.security import KeyStore, read_keys
from serving.settings import ServingSettings
from serving.state import Scorer, StateHolder

log = logging.getLogger(__name__)

_ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    422: "validation_error",
    429: "too_many_requests",
    503: "unavailable",
}


def _default_rules_loader(path: Path | None) -> Any:
    from models.rules.config import load_rules_config

    return load_rules_config(path)


def _default_scorer() -> Scorer:
    from serving.scoring import score_payloads

    return score_payloads


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Read the keys, start loading rules, models and snapshots, and answer at once.

    The load runs in the background (/readyz: 503 "loading" until it ends), so /healthz
    answers while a registry is slow; start-up waits for it at most `startup_wait_seconds`.
    The keys file is watched for changes every `keys_poll_seconds`.
    """
    settings: ServingSettings = app.state.settings
    limit_malloc_arenas()  # before any load thread: reloads must not grow memory
    path = settings.keys_path()
    app.state.keys = KeyStore(read_keys(path))
    app.state.key_watcher = KeyFileWatcher(path, app.state.keys)
    tasks: list[asyncio.Task[None]] = []
    if settings.auth_enabled and settings.keys_poll_seconds > 0:
        tasks.append(asyncio.create_task(app.state.key_watcher.watch(settings.keys_poll_seconds)))
    # Under `nrr serve`: follow the other workers' reloads and promotions (serving.replicas).
    app.state.replicas = replica_sync_for(app)
    app.state.metrics.generation.set(app.state.replicas.generation if app.state.replicas else 0)
    first = start_initial_load(app)
    tasks.append(first)
    if (replicas := app.state.replicas) is not None:
        tasks.append(asyncio.create_task(replicas.follow(app), name="nrr-replicas"))
        if replicas.polls_alias:
            tasks.append(asyncio.create_task(replicas.poll_alias(app), name="nrr-alias-poll"))
    if settings.startup_wait_seconds > 0:
        await asyncio.wait([first], timeout=settings.startup_wait_seconds)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        # A load stuck in a network call is a daemon thread: nothing here waits for it.
        await asyncio.gather(*tasks, return_exceptions=True)
        app.state.metrics.worker_exited()


class BodyLimitMiddleware:
    """Answer 413 to bodies over the limit, by declared length or by what actually arrives."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        if scope.get("method") not in {"POST", "PUT", "PATCH"}:
            await self.app(scope, receive, send)
            return
        # Read the body up front (bounded), so an over-long stream is a 413 before any parsing.
        chunks: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            more = message.get("more_body", False)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def _too_large(limit: int) -> JSONResponse:
    return error_response(413, f"request body larger than {limit} bytes")


def error_response(
    status: int, message: str, details: list[dict[str, str]] | None = None
) -> JSONResponse:
    """The `ApiError` JSON answer every error uses."""
    body = {
        "error": _ERROR_NAMES.get(status, "error"),
        "message": message,
        "details": details or [],
    }
    return JSONResponse(body, status_code=status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    response = error_response(exc.status_code, str(exc.detail))
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"field": ".".join(str(p) for p in err.get("loc", ())), "message": str(err.get("msg"))}
        for err in exc.errors()
    ]
    return error_response(422, "request does not match the schema", details)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(500, "internal error; it has been logged")


def create_app(
    settings: ServingSettings,
    *,
    scorer_factory: Callable[[], Scorer] | None = None,
    bundle_loader: Callable[[ServingSettings], ModelBundle] | None = None,
    rules_loader: Callable[[Path | None], Any] | None = None,
) -> FastAPI:
    """The API for `settings`; loaders default to the MLflow registry and packaged rules."""
    # Offline docs: Swagger UI and ReDoc come from the fastapi-offline wheel, not a CDN.
    app = FastAPIOffline(
        title="NRR Engine API",
        version="1",
        description="Churn and expansion probabilities, drivers, health, plays and renewals.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.holder = StateHolder()
    app.state.metrics = ServingMetrics()
    app.state.keys = KeyStore([])
    app.state.scorer_factory = scorer_factory or _default_scorer
    app.state.bundle_loader = bundle_loader or load_bundle
    app.state.rules_loader = rules_loader or _default_rules_loader
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    app.include_router(router)
    app.include_router(outcomes_router)
    app.include_router(voice_router)
    _include_dashboard(app)
    _document_limits(app, settings)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    return app


def app_from_run_dir() -> FastAPI:
    """The app of one `nrr serve --workers N` worker (uvicorn's factory, in each process):
    the settings `nrr serve` wrote to its run folder, so every worker serves the same."""
    return create_app(run_settings(Path(os.environ[RUN_DIR_ENV])))


def _document_limits(app: FastAPI, settings: ServingSettings) -> None:
    """Publish the configured limits in the OpenAPI schema, so clients can see them."""
    base = app.openapi

    def openapi() -> dict[str, Any]:
        schema = base()
        request = schema.get("components", {}).get("schemas", {}).get("ScoreRequest")
        if request is not None:
            request["properties"]["accounts"]["maxItems"] = settings.max_batch_size
        renewals = schema.get("paths", {}).get("/v1/renewals", {}).get("get", {})
        for param in renewals.get("parameters", []):
            if param.get("name") == "within_days":
                param["schema"]["maximum"] = settings.max_renewal_days
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _include_dashboard(app: FastAPI) -> None:
    # serving/dashboard.py is written by another engineer; until it lands there is no dashboard.
    import importlib

    try:
        dashboard = importlib.import_module("serving.dashboard")
    except ModuleNotFoundError as exc:
        if exc.name != "serving.dashboard":
            raise
        return
    app.include_router(dashboard.router)
