"""The drift check behind `nrr drift`: PSI of the latest snapshot against each champion.

The command (training/drift_cli.py) only parses options and prints; what is compared,
with which features and where it is logged lives here.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd

from features.definition import FeatureDefinition, from_model_metadata
from models.monitoring.drift import (
    REFERENCE_FILE,
    DriftReference,
    find_reference,
    population_stability,
)
from models.monitoring.drift import summarise as summarise_drift
from models.scoring.booster import META_FILE
from models.workspace import Workspace, point_mlflow_at
from training.config import REGISTERED_NAME, ExperimentConfig, Target

DRIFT_EXPERIMENT = "nrr-drift"


class DriftCheckError(RuntimeError):
    """The check cannot run; the message says what to do."""


@dataclass(frozen=True)
class ModelDrift:
    """One champion's PSI table on the checked snapshot rows."""

    target: Target
    name: str
    version: str
    reference: DriftReference
    table: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON summary: counts, worst features, the whole ranked table."""
        rows = [
            {"feature": str(r.feature), "psi": round(float(r.psi), 6), "status": str(r.status)}
            for r in self.table.itertuples()
        ]
        return {
            "model": self.name,
            "version": self.version,
            "reference_rows": self.reference.rows,
            "reference_window": dict(self.reference.meta),
            "thresholds": list(self.reference.thresholds),
            **summarise_drift(self.table),
            "table": rows,
        }


def latest_rows(frame: pd.DataFrame, *, as_of: pd.Timestamp | None) -> pd.DataFrame:
    """The rows of the latest snapshot date on or before `as_of` (any date when None)."""
    if "as_of" not in frame.columns or frame.empty:
        raise DriftCheckError("the snapshots have no rows (or no as_of column)")
    dates = pd.to_datetime(frame["as_of"])
    eligible = dates if as_of is None else dates[dates <= as_of]
    if eligible.empty:
        raise DriftCheckError(f"no snapshot on or before {as_of}; first is {dates.min()}")
    return frame.loc[dates == eligible.max()].reset_index(drop=True)


@dataclass(frozen=True)
class Champion:
    """A champion version with what the drift check reads from its one download."""

    target: Target
    name: str
    version: str
    reference: DriftReference
    definition: FeatureDefinition | None


def champion_reference(
    client: Any, name: str
) -> tuple[str, DriftReference, FeatureDefinition | None]:
    """The champion version of `name`, its drift reference and its feature definition."""
    import mlflow

    from training.registry import champion_version

    version = champion_version(client, name)
    if version is None:
        raise DriftCheckError(f"{name} has no champion: run `nrr train` (or `nrr promote`) first")
    with tempfile.TemporaryDirectory() as tmp:
        uri = client.get_model_version_download_uri(name, version)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
        reference = find_reference(local)
        # The definition sits in model.json's metadata: read it from the same download
        # instead of downloading (and loading) the model a second time.
        metas = sorted(local.rglob(META_FILE))
        meta = json.loads(metas[0].read_text()).get("metadata") if metas else None
    if reference is None:
        raise DriftCheckError(
            f"{name} v{version} has no {REFERENCE_FILE} (registered before drift references "
            "were stored); retrain to get one"
        )
    return version, reference, from_model_metadata(meta)


def load_champions(
    targets: list[Target], *, explicit: bool
) -> tuple[list[Champion], dict[str, str]]:
    """Each target's champion; targets without one are skipped unless explicit."""
    from mlflow import MlflowClient

    client = MlflowClient()
    champions: list[Champion] = []
    skipped: dict[str, str] = {}
    for target in targets:
        name = REGISTERED_NAME[target]
        try:
            version, reference, definition = champion_reference(client, name)
        except DriftCheckError as exc:
            if explicit:
                raise
            skipped[target] = str(exc)
            continue
        champions.append(Champion(target, name, version, reference, definition))
    if not champions:
        raise DriftCheckError("; ".join(skipped.values()) or "no model to check")
    return champions, skipped


def check_drift(
    rows: pd.DataFrame, champions: list[Champion], *, config: ExperimentConfig
) -> list[ModelDrift]:
    """PSI table of each champion on the snapshot rows."""
    results: list[ModelDrift] = []
    for champion in champions:
        # Thresholds come from the experiment config, so they can be tuned without retraining.
        reference = replace(champion.reference, thresholds=config.drift.thresholds)
        table = population_stability(reference, rows)
        results.append(
            ModelDrift(champion.target, champion.name, champion.version, reference, table)
        )
    return results


def log_to_mlflow(
    results: list[ModelDrift], *, settings: Workspace, as_of: pd.Timestamp, rows: int
) -> list[str]:
    """One run per model in the drift experiment: psi_<feature> metrics, table and summary."""
    import mlflow

    from models.workspace import setup_tracking

    experiment_id = setup_tracking(
        settings.model_copy(update={"experiment_name": DRIFT_EXPERIMENT})
    )
    run_ids = []
    for result in results:
        name = f"drift-{result.target}-{as_of.date()}"
        with mlflow.start_run(experiment_id=experiment_id, run_name=name) as run:
            mlflow.set_tags({"model": result.name, "model_version": result.version})
            mlflow.log_params({"as_of": str(as_of.date()), "rows": rows, "target": result.target})
            summary = summarise_drift(result.table)
            metrics = {f"psi_{r.feature}": float(r.psi) for r in result.table.itertuples()}
            metrics |= {k: float(summary[k]) for k in ("max_psi", "significant", "moderate")}
            mlflow.log_metrics(metrics)
            mlflow.log_text(result.table.to_csv(index=False), "drift_table.csv")
            mlflow.log_dict(result.to_dict(), "drift_summary.json")
            run_ids.append(run.info.run_id)
    return run_ids


def snapshot_rows(
    source: Any,
    snapshots: Path | None,
    *,
    as_of: pd.Timestamp | None,
    definition: FeatureDefinition,
) -> pd.DataFrame:
    if snapshots is not None:
        try:
            frame = pd.read_parquet(snapshots)
        except (OSError, ValueError) as exc:
            raise DriftCheckError(f"cannot read snapshots {snapshots}: {exc}") from exc
        return latest_rows(frame, as_of=as_of)
    assert source is not None
    return latest_from_source(source, as_of=as_of, definition=definition)


def latest_from_source(
    source: Any, *, as_of: pd.Timestamp | None, definition: FeatureDefinition
) -> pd.DataFrame:
    """Snapshot rows (features as the champion was trained on them) at the latest grid date."""
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    source = definition.apply(source)
    end = source.data_end if as_of is None else min(as_of, source.data_end)
    # A window a little longer than a month holds at least one grid date of either frequency.
    spine = build_spine(
        source, start=end - pd.Timedelta(days=40), end=end, freq=definition.snapshot.freq
    )
    if spine.empty:
        raise DriftCheckError(f"no active account on a snapshot date on or before {end}")
    spine = spine[spine["as_of"] == spine["as_of"].max()]
    return latest_rows(
        build_snapshots(source=source, spine=spine, config=definition.snapshot), as_of=None
    )


def point_at_store(settings: Workspace) -> None:
    """Point MLflow at the training store; a missing local store is an error, not a new one."""
    if not settings.store_exists():
        raise DriftCheckError(
            f"no {settings.describe()}: run `nrr train` first (or give --workdir)"
        )
    point_mlflow_at(settings)
