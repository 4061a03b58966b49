"""Several workers, one served generation: `nrr serve --workers N`.

Each worker holds its own copy of the served state, and a `POST /v1/admin/reload` reaches
only the worker that accepted the connection. The workers agree through a run folder that
`nrr serve` creates fresh at every start (NRR_RUN_DIR):

- `settings.json`: the settings every worker builds its app from;
- `generation.json`: a counter and the versions it is meant to serve. A worker that reloads
  on request bumps it (under a lock); every worker reads the file every
  `replica_sync_seconds` (one small read) and reloads itself when the counter moved on;
- `metrics/`: PROMETHEUS_MULTIPROC_DIR, prometheus_client's per-process files (serving.metrics).

A promotion (`nrr promote` moving the alias) is found the same way: every worker looks up
the alias every `model_poll_seconds` (two registry calls, no download) and, when it names
other versions than the generation file, bumps the generation for all. Hence the bound, in
seconds, from the promotion or reload until every worker serves the new versions:
model_poll_seconds (promotions only) + replica_sync_seconds + one load (download and
precompute of the snapshots, which /readyz's loaded_at shows).

The API keys need nothing of this: every worker re-reads the keys file when it changes
(serving.lifecycle.KeyFileWatcher), one stat a second.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from serving.lifecycle import in_daemon_thread, reload_state
from serving.metrics import MULTIPROC_ENV, sweep_dead_workers
from serving.security import locked
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

RUN_DIR_ENV = "NRR_RUN_DIR"
SETTINGS_FILE = "settings.json"
GENERATION_FILE = "generation.json"
METRICS_DIR = "metrics"
# A follower whose reload failed tries again after this long, then twice as long, up to
# RETRY_MAX: the others serve the new generation meanwhile, so it must not give up.
RETRY_FIRST, RETRY_MAX = 5.0, 60.0
# How often a worker looks for workers that died without saying so (killed): their live
# gauges would otherwise stay in /metrics.
SWEEP_SECONDS = 10.0


def prepare_run_dir(settings: ServingSettings, workers: int) -> Path:
    """A fresh run folder for one server start: settings, generation 0, metrics folder.

    Sets NRR_RUN_DIR (and PROMETHEUS_MULTIPROC_DIR with more than one worker) in this
    process's environment, which the workers inherit. An operator's own
    PROMETHEUS_MULTIPROC_DIR is honoured but emptied: files of an earlier start would add
    its counts to this one's.
    """
    run_dir = Path(tempfile.mkdtemp(prefix="nrr-serve-"))
    (run_dir / SETTINGS_FILE).write_text(settings.model_dump_json())
    write_generation(run_dir, {"generation": 0, "versions": None, "reason": "start"})
    os.environ[RUN_DIR_ENV] = str(run_dir)
    if workers > 1:
        metrics = Path(os.environ.get(MULTIPROC_ENV) or run_dir / METRICS_DIR)
        if metrics.exists():
            for stale in metrics.glob("*.db"):
                stale.unlink()
        metrics.mkdir(parents=True, exist_ok=True)
        os.environ[MULTIPROC_ENV] = str(metrics)
    return run_dir


def remove_run_dir(run_dir: Path) -> None:
    """Delete the run folder at the server's exit (the metrics folder inside it too)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    os.environ.pop(RUN_DIR_ENV, None)


def run_settings(run_dir: Path) -> ServingSettings:
    """The settings `nrr serve` wrote for its workers."""
    data = json.loads((run_dir / SETTINGS_FILE).read_text())
    return ServingSettings(**data)


def read_generation(run_dir: Path) -> dict[str, Any]:
    """The generation file; generation 0 if it cannot be read (never a crash of a worker)."""
    try:
        data = json.loads((run_dir / GENERATION_FILE).read_text())
    except (OSError, ValueError):
        return {"generation": 0, "versions": None}
    return data if isinstance(data, dict) else {"generation": 0, "versions": None}


def write_generation(run_dir: Path, data: dict[str, Any]) -> None:
    """Replace the generation file atomically: a reader never sees half of it."""
    tmp = run_dir / f"{GENERATION_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({**data, "pid": os.getpid(), "at": time.time()}))
    os.replace(tmp, run_dir / GENERATION_FILE)


def bump_generation(
    run_dir: Path, versions: dict[str, str | None] | None, reason: str, *, unless: Any = None
) -> int | None:
    """Advance the generation to serve `versions`; the new number, or None when `unless`
    (a predicate of the current file) says another worker already did."""
    with locked(run_dir / GENERATION_FILE):
        current = read_generation(run_dir)
        if unless is not None and unless(current):
            return None
        generation = int(current.get("generation", 0)) + 1
        write_generation(
            run_dir, {"generation": generation, "versions": versions, "reason": reason}
        )
    return generation


class ReplicaSync:
    """One worker's part: publish its reloads, follow the others' and the alias."""

    def __init__(self, run_dir: Path, settings: ServingSettings) -> None:
        self.polls_alias = settings.use_registry and settings.model_poll_seconds > 0
        self.run_dir = run_dir
        self.settings = settings
        # What the worker serves: taken at start, before its first load, so a reload
        # published while it loads is followed once that load ends.
        self.generation = int(read_generation(run_dir).get("generation", 0))
        self._retry_at = 0.0
        self._retry_wait = RETRY_FIRST

    def published(self, app: FastAPI) -> None:
        """This worker reloaded on request: the others must follow."""
        versions = _served_versions(app)
        generation = bump_generation(self.run_dir, versions, "reload")
        if generation is not None:
            self._serve(app, generation)

    def _serve(self, app: FastAPI, generation: int) -> None:
        self.generation = generation
        app.state.metrics.generation.set(generation)

    async def follow(self, app: FastAPI) -> None:
        """Every replica_sync_seconds: follow a newer generation; now and then: sweep dead
        workers' gauges. Until cancelled."""
        next_sweep = time.monotonic() + SWEEP_SECONDS
        while True:
            await asyncio.sleep(self.settings.replica_sync_seconds)
            try:
                await self.catch_up(app)
                if time.monotonic() >= next_sweep:
                    folder = app.state.metrics.multiprocess_dir
                    if folder is not None:
                        sweep_dead_workers(folder)
                    next_sweep = time.monotonic() + SWEEP_SECONDS
            except Exception:  # never let the follower die: this worker would drift
                log.exception("replica sync")

    async def poll_alias(self, app: FastAPI) -> None:
        """Every model_poll_seconds, `check_alias`; a task of its own, so a registry that
        hangs for its budget never holds up following a reload. Until cancelled."""
        while True:
            await asyncio.sleep(self.settings.model_poll_seconds)
            try:
                await self.check_alias(app)
            except Exception:
                log.exception("alias poll")

    async def catch_up(self, app: FastAPI) -> bool:
        """Reload when the generation file moved past this worker; True when it did."""
        holder = app.state.holder
        if holder.loading or time.monotonic() < self._retry_at:
            return False  # the first load ends first (it resolves the alias anyway)
        wanted = int(read_generation(self.run_dir).get("generation", 0))
        if wanted <= self.generation:
            return False
        watcher = getattr(app.state, "key_watcher", None)
        if watcher is not None:
            watcher.refresh(force=True)
        reason = await reload_state(app)
        if reason is not None:
            log.error("worker %d could not follow generation %d: %s", os.getpid(), wanted, reason)
            self._retry_at = time.monotonic() + self._retry_wait
            self._retry_wait = min(self._retry_wait * 2, RETRY_MAX)
            return False
        self._retry_wait = RETRY_FIRST
        self._serve(app, wanted)
        log.info("worker %d follows generation %d: %s", os.getpid(), wanted, _served_versions(app))
        return True

    async def check_alias(self, app: FastAPI) -> None:
        """Bump the generation when the alias names other versions than the generation's."""
        from serving.registry_client import champion_versions

        named = await in_daemon_thread(lambda: champion_versions(self.settings), "nrr-alias")
        if named is None or app.state.holder.current is None:
            return

        def known(current: dict[str, Any]) -> bool:
            meant = current.get("versions") or _served_versions(app)
            return bool(meant == named)

        generation = bump_generation(self.run_dir, named, "promotion", unless=known)
        if generation is not None:
            log.info(
                "alias %s names %s: generation %d", self.settings.model_alias, named, generation
            )


def _served_versions(app: FastAPI) -> dict[str, str | None] | None:
    state = app.state.holder.current
    return None if state is None else dict(state.bundle.versions)


def replica_sync_for(app: FastAPI) -> ReplicaSync | None:
    """The app's ReplicaSync when it runs under `nrr serve` (a run folder), else None."""
    value = os.environ.get(RUN_DIR_ENV)
    if not value or not (Path(value) / GENERATION_FILE).exists():
        return None
    return ReplicaSync(Path(value), app.state.settings)
