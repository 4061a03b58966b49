"""Resolve the served models in the MLflow registry and load them without pickle."""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from features.config import SnapshotConfig
from features.definition import FeatureDefinition, from_model_metadata
from features.registry import BY_NAME
from models.monitoring.drift import REFERENCE_FILE as DRIFT_FILE
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from models.scoring.booster import ScoringModel

log = logging.getLogger(__name__)

MODEL_META = "model.json"
NORMALISER_FILE = "health_normaliser.json"
FALLBACK_FILE = "fallback_calibration.json"
ROLES = ("churn", "expansion")


@dataclass(frozen=True)
class ModelBundle:
    """What one load of the registry yielded: models, rule artefacts, versions, why not."""

    churn: ScoringModel | None = None
    expansion: ScoringModel | None = None
    normaliser: dict[str, Any] | None = None
    fallback_maps: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str | None] = field(default_factory=lambda: dict.fromkeys(ROLES, None))
    fallback_reason: str | None = None
    # Per role, the PSI reference (models.monitoring.drift.DriftReference.to_dict()) stored with the model.
    drift_references: dict[str, dict[str, Any]] = field(default_factory=dict)

    def model(self, role: str) -> ScoringModel | None:
        return self.churn if role == "churn" else self.expansion

    def feature_definition(self) -> FeatureDefinition:
        """How the served models' features were built (the defaults without a model)."""
        for model in (self.churn, self.expansion):
            if model is not None and (found := from_model_metadata(model.metadata)) is not None:
                return found
        return FeatureDefinition(SnapshotConfig())


class ModelLoadError(RuntimeError):
    """One registered model could not be served; the message is the fallback reason."""


class RegistryUnreachable(ModelLoadError):
    """The registry did not answer (refused, timed out): the next role is not tried."""


def disable_pickle() -> None:
    """Make MLflow refuse pickle deserialisation in this process (it defaults to allowing it)."""
    os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "false"


# MLflow's HTTP client, unless told otherwise, retries 7 times with exponential backoff and
# waits 120 s for each answer: minutes per model with the server down (issue 13 measured
# 495 s). One quick retry for a transient blip; the rest is bounded by the load's budget.
HTTP_RETRIES = 1


def configure_mlflow_http(budget: float) -> dict[str, str]:
    """Set MLflow's HTTP retry and timeout variables so one load fits in `budget` seconds.

    A role's first registry call may wait (1 + HTTP_RETRIES) timeouts, and there are two
    roles: the per-request timeout is the budget over 2 * (1 + HTTP_RETRIES) + 1 (whole
    seconds: MLflow reads it as an int), at least 1 s. Set in the process environment,
    which is where MLflow reads them at each request; returned for logs and tests.
    """
    timeout = max(1, int(budget // (2 * (1 + HTTP_RETRIES) + 1)))
    values = {
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(HTTP_RETRIES),
        "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
        "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0.5",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": str(timeout),
        # A Retry-After of minutes from a proxy must not hold the load past its budget.
        "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER": "false",
    }
    os.environ.update(values)
    return values


def within_budget(work: Callable[[], ModelBundle], budget: float, what: str) -> ModelBundle:
    """`work()` in a daemon thread, or the rules with the reason when it runs past `budget`.

    The thread is abandoned, not stopped (a socket read cannot be interrupted): it ends at
    its own timeout and its result is dropped. Daemon, so it never holds up the process's
    exit (SIGTERM during a registry outage).
    """
    outcome: list[tuple[bool, Any]] = []
    done = threading.Event()

    def run() -> None:
        try:
            outcome.append((True, work()))
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append((False, exc))
        finally:
            done.set()

    threading.Thread(target=run, name="nrr-registry-load", daemon=True).start()
    if not done.wait(budget):
        log.error("registry: no answer from %s within %g s; serving the rules", what, budget)
        return ModelBundle(
            fallback_reason=f"registry unreachable: {what} did not answer within {budget:g} s "
            "(NRR_REGISTRY_TIMEOUT_SECONDS)"
        )
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


def load_bundle(settings: ServingSettings) -> ModelBundle:
    """The champion churn and expansion models, or as much as loads plus the reason why not.

    The registry calls get `settings.registry_timeout_seconds` in all; past it the bundle is
    the rules with the reason (a closed port answers in about a second, a server that never
    answers in the budget).
    """
    if not settings.use_registry:
        return ModelBundle(fallback_reason="registry disabled by settings (NRR_USE_REGISTRY)")
    workspace = settings.workspace()
    if not workspace.store_exists():
        # Opening a missing SQLite store would create an empty one and hide the mistake.
        return ModelBundle(
            fallback_reason=f"no model store at {workspace.resolved_tracking_uri()}: run "
            "`nrr train` in this folder first, or point --workdir / NRR_WORKDIR at its workspace"
        )
    disable_pickle()
    budget = settings.registry_timeout_seconds
    configure_mlflow_http(budget)
    # Imported here, outside the budget: the budget is for the registry, not for imports
    # (and an abandoned thread must never be one holding the import lock).
    import mlflow.artifacts  # noqa: F401
    from mlflow import MlflowClient  # noqa: F401

    def work() -> ModelBundle:
        if settings.artifacts_dir is not None:
            return _load_bundle(settings, settings.artifacts_dir)
        # Everything is read into memory below, so the downloaded files are not needed after
        # loading; a temporary folder per start (and per reload) would otherwise pile up.
        with tempfile.TemporaryDirectory(prefix="nrr-models-") as root:
            return _load_bundle(settings, Path(root))

    return within_budget(work, budget, f"the registry at {workspace.resolved_tracking_uri()}")


def champion_versions(settings: ServingSettings) -> dict[str, str | None] | None:
    """The versions the alias names now, per role (None: not registered), without loading.

    None when the registry cannot say within its budget (down, or no store): the caller
    keeps what it serves. Cheap enough to poll: two alias look-ups, no download.
    """
    if not settings.use_registry or not settings.workspace().store_exists():
        return None
    configure_mlflow_http(settings.registry_timeout_seconds)
    from mlflow import MlflowClient

    uri = settings.workspace().resolved_tracking_uri()
    names = {"churn": settings.churn_model, "expansion": settings.expansion_model}
    found: list[dict[str, str | None]] = []

    def look() -> ModelBundle:
        from mlflow.exceptions import MlflowException

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        versions: dict[str, str | None] = {}
        for role, name in names.items():
            try:
                versions[role] = str(
                    client.get_model_version_by_alias(name, settings.model_alias).version
                )
            except MlflowException as exc:
                missing = "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code)
                if not missing and "not found" not in str(exc).lower():
                    raise
                versions[role] = None
        found.append(versions)
        return ModelBundle(versions=versions)

    try:
        bundle = within_budget(look, settings.registry_timeout_seconds, f"the registry at {uri}")
    except Exception as exc:  # unreachable or refused: nothing to compare with this time
        log.debug("alias look-up failed: %s", exc)
        return None
    return found[0] if found and bundle.fallback_reason is None else None


def _load_bundle(settings: ServingSettings, root: Path) -> ModelBundle:
    names = {"churn": settings.churn_model, "expansion": settings.expansion_model}
    models: dict[str, ScoringModel | None] = dict.fromkeys(ROLES, None)
    versions: dict[str, str | None] = dict.fromkeys(ROLES, None)
    maps: dict[str, dict[str, Any]] = {}
    drift: dict[str, dict[str, Any]] = {}
    normaliser: dict[str, Any] | None = None
    reasons: list[str] = []
    unreachable = False
    for role in ROLES:
        if unreachable:
            # The same server just failed to answer: asking again would double the wait.
            reasons.append(f"registry unreachable for {names[role]}@{settings.model_alias}")
            continue
        try:
            version, folder = _download(settings, names[role], root)
        except ModelLoadError as exc:
            unreachable = isinstance(exc, RegistryUnreachable)
            reasons.append(str(exc))
            continue
        # The rule artefacts stay usable even when the booster beside them is damaged.
        found_normaliser, found_map = read_rule_artifacts(folder, role)
        normaliser = normaliser or found_normaliser
        if found_map is not None:
            maps[role] = found_map
        if (reference := _read_json(folder, DRIFT_FILE)) is not None:
            drift[role] = reference
        try:
            models[role], versions[role] = load_model_folder(folder), version
        except ModelLoadError as exc:
            reasons.append(str(exc))
    return ModelBundle(
        churn=models["churn"],
        expansion=models["expansion"],
        normaliser=normaliser,
        fallback_maps=maps,
        versions=versions,
        fallback_reason="; ".join(reasons) or None,
        drift_references=drift,
    )


def _download(settings: ServingSettings, name: str, root: Path) -> tuple[str, Path]:
    from mlflow import MlflowClient
    from mlflow.artifacts import download_artifacts
    from mlflow.exceptions import MlflowException

    alias = settings.model_alias
    uri = settings.workspace().resolved_tracking_uri()
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
            raise ModelLoadError(f"model not registered: {name}@{alias}") from exc
        raise RegistryUnreachable(
            f"registry unreachable for {name}@{alias}: {exc.message}"
        ) from exc
    except Exception as exc:  # network errors, bad URIs: the service must still start
        raise RegistryUnreachable(f"registry unreachable for {name}@{alias}: {exc}") from exc
    dst = root / name / str(version.version)
    dst.mkdir(parents=True, exist_ok=True)
    try:
        # The version's own source URI: resolving models:/ again would consult MLflow's
        # global registry URI, which may differ from the one given in the settings.
        source = client.get_model_version_download_uri(name, version.version)
        local = download_artifacts(artifact_uri=source, dst_path=str(dst), tracking_uri=uri)
    except Exception as exc:
        raise ModelLoadError(f"model files missing: {name} v{version.version}: {exc}") from exc
    return str(version.version), Path(local)


def load_model_folder(folder: Path) -> ScoringModel:
    """A ScoringModel from a downloaded artifact folder, checked against the feature registry."""
    from models.scoring.booster import ScoringModel

    metas = sorted(folder.rglob(MODEL_META))
    if not metas:
        raise ModelLoadError(f"model files corrupt: no {MODEL_META} under {folder}")
    check_booster_file(metas[0].parent / BOOSTER_FILE)
    try:
        model = ScoringModel.load(metas[0].parent)
    except Exception as exc:  # any parse error of a damaged file means the same: fall back
        raise ModelLoadError(f"model files corrupt: {metas[0].parent}: {exc}") from exc
    unknown = [name for name in model.feature_names if name not in BY_NAME]
    if unknown:
        raise ModelLoadError(
            f"feature list mismatch: model uses features unknown to this release: {unknown[:10]}"
        )
    return model


BOOSTER_FILE = "model.txt"
# LightGBM writes this line after the last tree. Its parser aborts the whole process
# (std::terminate from a parallel region, no Python exception) on a file cut inside the
# trees: a truncated model.txt killed every worker that loaded it, in a restart loop.
TREES_END = b"end of trees"


def check_booster_file(path: Path) -> None:
    """Refuse a LightGBM model file cut short before LightGBM parses it (absent: a linear
    model, which has none)."""
    if not path.exists():
        return
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"model files corrupt: {path}: {exc}") from exc
    if TREES_END not in data:
        raise ModelLoadError(
            f"model files corrupt: {path} is truncated (no '{TREES_END.decode()}' line)"
        )


def read_rule_artifacts(
    folder: Path, role: str
) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The health normaliser and the role's rule-score calibration map found under `folder`.

    Training writes one map per model folder; a file keyed by role is accepted too.
    """
    normaliser = _read_json(folder, NORMALISER_FILE)
    data = _read_json(folder, FALLBACK_FILE) or {}
    found = data if "thresholds" in data else data.get(role)
    return normaliser, found if isinstance(found, dict) else None


def _read_json(folder: Path, name: str) -> dict[str, Any] | None:
    for path in sorted(folder.rglob(name)):
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log.warning("ignoring unreadable %s: %s", path, exc)
            continue
        if isinstance(data, dict):
            return data
    return None
