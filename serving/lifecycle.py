"""The served state's life: build it from the app's settings and loaders, install it.

Both the start-up (serving/app.py) and `POST /v1/admin/reload` (serving/routes.py) go
through these functions, so neither module needs the other.

Loading runs in a daemon thread, never in the event loop nor in its threadpool: the API
answers /healthz and /readyz ("loading") while the registry is slow, and a load stuck in a
network call never holds up the process's exit on SIGTERM (threadpool workers would be
joined at exit; a daemon thread is not).
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fastapi import FastAPI

from serving.security import KeyFileError, KeyStore, read_keys
from serving.state import StateError, StateHolder, build_state

log = logging.getLogger(__name__)
T = TypeVar("T")


async def in_daemon_thread(fn: Callable[[], T], name: str) -> T:
    """`fn()` in a new daemon thread, awaited without occupying the event loop or a worker.

    Cancelling the await (shutdown) abandons the thread; its result is dropped.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if future.done():  # cancelled meanwhile
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    def run() -> None:
        try:
            result: tuple[bool, Any] = (True, fn())
        except BaseException as exc:  # handed to the awaiting task
            result = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *result)
        except RuntimeError:  # the loop closed meanwhile (shutdown): nobody is waiting
            pass

    threading.Thread(target=run, name=name, daemon=True).start()
    return await future


async def load_initial_state(app: FastAPI) -> None:
    """Build the first state and install it; on failure serve readiness 503 and say why.

    Until it ends `/readyz` answers 503 "loading" (`holder.loading`). A reload that finished
    first wins: the first load never replaces a state already served.
    """
    holder: StateHolder = app.state.holder
    holder.loading = True
    state, error = None, None
    try:
        state = await in_daemon_thread(lambda: new_state(app, strict=False), "nrr-first-load")
    except StateError as exc:
        error = str(exc)
    except Exception as exc:  # a bug must not leave readiness at "loading" for ever
        log.exception("first load failed")
        error = f"load failed: {exc}"
    async with holder.lock:
        if holder.current is None:
            if state is not None:
                install(app, state)
                log.info("serving (%s): %s", state.status, state.bundle.fallback_reason or "models")
            else:
                holder.error = error
                log.error("nothing to serve: %s", error)
        holder.loading = False


def start_initial_load(app: FastAPI) -> asyncio.Task[None]:
    """Start the first load in the background; the task ends when it is installed."""
    app.state.holder.loading = True
    return asyncio.create_task(load_initial_state(app), name="nrr-first-load")


def new_state(app: FastAPI, *, strict: bool) -> Any:
    """A fully built state from the app's settings and loaders (not yet served)."""
    return build_state(
        app.state.settings,
        scorer=app.state.scorer_factory(),
        load_bundle=app.state.bundle_loader,
        load_rules=app.state.rules_loader,
        strict=strict,
    )


def install(app: FastAPI, state: Any) -> None:
    """Swap the served state (one reference assignment) and publish its model versions."""
    app.state.holder.current = state
    app.state.holder.error = None
    app.state.metrics.set_models(state.bundle.versions)


async def reload_state(app: FastAPI) -> str | None:
    """Re-resolve the alias, check and precompute aside, and swap; None when reloaded, else
    why not (the old state keeps serving). Used by POST /v1/admin/reload and by workers
    following another's reload or a promotion (serving.replicas)."""
    holder: StateHolder = app.state.holder
    async with holder.lock:
        try:
            fresh = await in_daemon_thread(lambda: new_state(app, strict=True), "nrr-reload")
        except StateError as exc:
            app.state.metrics.reloads.labels(outcome="failed").inc()
            return str(exc)
        old = holder.current
        if old is not None and old.status == "ready" and fresh.status != "ready":
            # Never trade working models for the rules because the registry hiccuped.
            app.state.metrics.reloads.labels(outcome="failed").inc()
            return f"new models unusable: {fresh.bundle.fallback_reason}"
        install(app, fresh)
        del old, fresh
    app.state.metrics.reloads.labels(outcome="reloaded").inc()
    # The old state (models, every precomputed answer) is garbage now: hand its pages back,
    # or a reload a minute grows a worker's memory for hours (benchmarks/bench_soak.py).
    await in_daemon_thread(release_memory, "nrr-release")
    return None


# glibc gives threads their own malloc arenas (up to 8 per core) and every load runs in a
# new thread (in_daemon_thread), so each reload's garbage sat in an arena the next one did
# not reuse: a worker grew 10% in ten reloads. Two arenas kept it flat (in-process, 1,000
# accounts, reloads 1-9: 421 -> 463 MB with the default, 389 -> 406 MB with 2).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas of this process at MALLOC_ARENAS (no-op without glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def release_memory() -> None:
    """Collect cycles, then return glibc's free heap pages to the system (no-op elsewhere)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return
    libc.malloc_trim(0)


class KeyFileWatcher:
    """Re-reads the API keys file into the served `KeyStore` when the file changes.

    A change is a different (inode, mtime, size) from one `os.stat`: `nrr apikey create` and
    `revoke` replace the file atomically, so each write is a new inode. A file that does not
    parse keeps the keys in force (logged once per change). Polled by a background task of
    the app (`watch`), never on the request path, and on `POST /v1/admin/reload` (`refresh`).
    """

    def __init__(self, path: Path, store: KeyStore) -> None:
        self.path = path
        self.store = store
        self.error: str | None = None
        self._seen = self._signature()

    def _signature(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def refresh(self, *, force: bool = False) -> bool:
        """Load the file if it changed (or `force`); True when the served keys were replaced."""
        seen = self._signature()
        if not force and seen == self._seen:
            return False
        self._seen = seen
        try:
            records = read_keys(self.path)
        except KeyFileError as exc:
            self.error = str(exc)
            log.error("API keys file changed but cannot be read; the keys in force stay: %s", exc)
            return False
        self.error = None
        before = len(self.store)
        self.store.replace_records(records)
        log.info("API keys reloaded from %s: %d key(s), were %d", self.path, len(records), before)
        return True

    async def watch(self, interval: float) -> None:
        """Poll the file every `interval` seconds until cancelled (one stat per poll)."""
        while True:
            await asyncio.sleep(interval)
            try:
                self.refresh()
            except Exception:  # never let the watcher die: keys would stop rotating
                log.exception("API keys watcher")
