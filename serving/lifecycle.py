"""The served state's life: build it from the app's settings and loaders, install it.

Both the start-up (serving/app.py) and `POST /v1/admin/reload` (serving/routes.py) go
through these functions, so neither module needs the other.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from serving.state import StateError, StateHolder, build_state

log = logging.getLogger(__name__)


async def load_initial_state(app: FastAPI) -> None:
    """Build the first state; on failure serve readiness 503 and say why."""
    holder: StateHolder = app.state.holder
    try:
        state = await run_in_threadpool(new_state, app, strict=False)
    except StateError as exc:
        holder.error = str(exc)
        log.error("nothing to serve: %s", exc)
        return
    install(app, state)


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
