"""Prometheus metrics of one app: requests and latencies per route, fallbacks, model info,
refused API keys."""

from __future__ import annotations

import time
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServingMetrics:
    """The metric families, on a registry of their own so apps never collide."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "nrr_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nrr_http_request_duration_seconds",
            "request latency by route template",
            ["route", "method"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "nrr_fallback_scores",
            "scores answered from the rules instead of a model, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.model_info = Gauge(
            "nrr_model_info",
            "served model versions (value 1); version 'none' when in fallback",
            ["model", "version", "source"],
            registry=self.registry,
        )
        self.reloads = Counter(
            "nrr_reloads", "model reloads by outcome", ["outcome"], registry=self.registry
        )
        # No client address or key id labels: those would be unbounded (or name keys).
        self.auth_failures = Counter(
            "nrr_auth_failures",
            "requests refused for their API key, by cause: missing, malformed, unknown_key, "
            "wrong_secret, not_verified (throttled before a legacy key could be checked)",
            ["reason"],
            registry=self.registry,
        )
        self.auth_throttled = Counter(
            "nrr_auth_throttled",
            "refusals answered 429 after repeated failures, by limit: client, key, slow_path",
            ["scope"],
            registry=self.registry,
        )
        self.auth_legacy_checks = Counter(
            "nrr_auth_legacy_checks",
            "scrypt checks of legacy API key records, by outcome (ok, wrong)",
            ["outcome"],
            registry=self.registry,
        )

    def set_models(self, versions: Mapping[str, str | None]) -> None:
        """Replace the model-info series with the versions now served."""
        self.model_info.clear()
        for model, version in versions.items():
            source = "model" if version else "rules"
            self.model_info.labels(model=model, version=version or "none", source=source).set(1)

    def count_fallbacks(self, reason: str, n: int = 1) -> None:
        if n > 0:
            self.fallbacks.labels(reason=reason).inc(n)

    def count_auth_refusal(self, reason: str, throttled: str = "") -> None:
        self.auth_failures.labels(reason=reason).inc()
        if throttled:
            self.auth_throttled.labels(scope=throttled).inc()

    def count_legacy_check(self, ok: bool) -> None:
        self.auth_legacy_checks.labels(outcome="ok" if ok else "wrong").inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Pure ASGI middleware counting every HTTP request under its route template and timing
    all but 429s: those are throttled key failures held back on purpose (security.Tarpit),
    and their second would hide the latency of the requests actually served."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            # The template, not the raw path: account ids must not explode the label set.
            name = getattr(route, "path", None) or "<unmatched>"
            method = scope.get("method", "")
            self.metrics.requests.labels(route=name, method=method, status=str(status)).inc()
            if status != 429:
                self.metrics.latency.labels(route=name, method=method).observe(
                    time.perf_counter() - start
                )
