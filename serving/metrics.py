"""Prometheus metrics of one app: requests and latencies per route, fallbacks, model info,
refused API keys.

With `nrr serve --workers N` every worker counts into prometheus_client's multiprocess files
(PROMETHEUS_MULTIPROC_DIR, a fresh folder per server start: serving.replicas) and /metrics,
whichever worker answers it, sums them all. Gauges say per worker (a `pid` label) what it
serves; a worker that exits takes its gauges with it (`mark_process_dead`).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Mapping
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The multiprocess folder of this process, or None in single-process mode.

    prometheus_client picks its value store when it is imported, from this variable, so
    `nrr serve` sets it before any worker starts (serving.replicas.prepare_run_dir).
    """
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


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
        self.multiprocess_dir = multiprocess_dir()
        # Per worker (`pid` label when several): which versions each serves, and which
        # generation of the server's reloads (serving.replicas); a dead worker's series go.
        self.model_info = Gauge(
            "nrr_model_info",
            "served model versions (value 1; 0 for versions served earlier by this worker); "
            "version 'none' when in fallback",
            ["model", "version", "source"],
            registry=self.registry,
            multiprocess_mode="liveall",
        )
        self._model_series: list[tuple[str, str, str]] = []
        self.generation = Gauge(
            "nrr_serving_generation",
            "reload generation the worker serves (nrr serve --workers: all converge on the newest)",
            registry=self.registry,
            multiprocess_mode="liveall",
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
        if self.multiprocess_dir is None:
            self.model_info.clear()
        else:
            # Multiprocess mode cannot clear a series (it lives in the worker's file): the
            # versions served before read 0, so only the ones served now read 1.
            for labels in self._model_series:
                self.model_info.labels(*labels).set(0)
        self._model_series = []
        for model, version in versions.items():
            source = "model" if version else "rules"
            self._model_series.append((model, version or "none", source))
            self.model_info.labels(*self._model_series[-1]).set(1)

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
        """The exposition text: this process's registry, or every worker's files summed."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=str(self.multiprocess_dir))
        return generate_latest(merged)

    def worker_exited(self) -> None:
        """Drop this process's live gauges (its shutdown); counters keep counting for it."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiprocess_dir))


_LIVE_FILE = re.compile(r"^gauge_live\w+_(\d+)\.db$")


def sweep_dead_workers(folder: Path) -> list[int]:
    """`mark_process_dead` for every worker whose live gauges remain but whose process is
    gone (killed, so its own shutdown never ran); the pids swept."""
    dead: set[int] = set()
    for path in folder.glob("gauge_live*.db"):
        match = _LIVE_FILE.match(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid in dead or pid == os.getpid():
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.add(pid)
        except PermissionError:  # alive, someone else's
            continue
    for pid in sorted(dead):
        multiprocess.mark_process_dead(pid, str(folder))
    return sorted(dead)


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
