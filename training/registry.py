"""Model registry: challenger/champion aliases, the promotion gate, manual promote and rollback."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.definition import FeatureDefinition, from_model_metadata
from models.rules.config import RulesConfig
from models.scoring.booster import ScoringModel
from training.config import PromotionConfig
from training.metrics import brier, ranking_metrics
from training.tracking import package_versions

if TYPE_CHECKING:
    from mlflow import MlflowClient

CHAMPION, CHALLENGER = "champion", "challenger"
HISTORY_TAG = "champion_history"


@dataclass(frozen=True)
class GateDecision:
    """Whether the challenger becomes champion, and the numbers behind it."""

    promoted: bool
    reason: str
    challenger_auc: float
    challenger_brier: float
    champion_version: str | None = None
    champion_auc: float | None = None
    champion_brier: float | None = None
    rows: int = 0
    # With promotion.interval: the lower end of the ROC-AUC gain's bootstrap interval.
    auc_gain_low: float | None = None

    def to_dict(self) -> dict[str, object]:
        """Plain dict for logging."""
        return asdict(self)


def decide(
    *,
    challenger: tuple[float, float],
    champion: tuple[float, float] | None,
    config: PromotionConfig,
    champion_version: str | None = None,
    rows: int = 0,
    auc_gain_low: float | None = None,
) -> GateDecision:
    """Promote when there is no champion, or ROC-AUC rises enough and Brier is not much worse.

    With `auc_gain_low` (promotion.interval) the gain must also clear `min_auc_delta` at the
    lower end of its bootstrap interval.
    """
    auc, brier_score = challenger
    if champion is None:
        return GateDecision(True, "no champion yet", auc, brier_score, rows=rows)
    c_auc, c_brier = champion
    auc_ok = auc >= c_auc + config.min_auc_delta and auc > c_auc
    brier_ok = brier_score <= c_brier + config.brier_tolerance
    noise = auc_ok and auc_gain_low is not None and not auc_gain_low > config.min_auc_delta
    if noise:
        auc_ok = False
        reason = (
            f"ROC-AUC {auc:.4f} vs {c_auc:.4f}: the gain's 95% interval starts at "
            f"{auc_gain_low:.4f}, not above {config.min_auc_delta} (within the noise)"
        )
    elif auc_ok and brier_ok:
        reason = f"ROC-AUC {auc:.4f} vs {c_auc:.4f}, Brier {brier_score:.4f} vs {c_brier:.4f}"
    elif not auc_ok:
        reason = f"ROC-AUC {auc:.4f} does not beat champion {c_auc:.4f} by {config.min_auc_delta}"
    else:
        reason = (
            f"Brier {brier_score:.4f} worse than champion {c_brier:.4f} + {config.brier_tolerance}"
        )
    return GateDecision(
        auc_ok and brier_ok, reason, auc, brier_score, champion_version, c_auc, c_brier, rows,
        auc_gain_low,
    )  # fmt: skip


def gate_scores(labels: np.ndarray, probs: np.ndarray) -> tuple[float, float]:
    """(ROC-AUC, Brier) of probabilities."""
    return ranking_metrics(labels, probs, budget=0.2)["roc_auc"], brier(labels, probs)


def champion_version(client: MlflowClient, name: str) -> str | None:
    """Version number holding the champion alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        return None


def load_version(client: MlflowClient, name: str, version: str) -> ScoringModel:
    """Download a registered version's artifacts and read its ScoringModel (no pickle)."""
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        uri = client.get_model_version_download_uri(name, version)
        local = mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp)
        return ScoringModel.load(Path(local))


def _history(client: MlflowClient, name: str) -> list[str]:
    tags = client.get_registered_model(name).tags
    return list(json.loads(tags.get(HISTORY_TAG, "[]")))


def set_champion(client: MlflowClient, name: str, version: str) -> None:
    """Move the champion alias to `version`, recording it in the history tag."""
    client.get_model_version(name, version)  # raises a clear MlflowException when absent
    client.set_registered_model_alias(name, CHAMPION, version)
    history = [v for v in _history(client, name) if v != version] + [version]
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))


def rollback(client: MlflowClient, name: str) -> str:
    """Give the champion alias back to the previous champion; returns its version."""
    history = _history(client, name)
    current = champion_version(client, name)
    if current is not None and history and history[-1] == current:
        history = history[:-1]
    if not history:
        raise ValueError(f"{name}: no previous champion to roll back to")
    previous = history[-1]
    client.set_registered_model_alias(name, CHAMPION, previous)
    client.set_registered_model_tag(name, HISTORY_TAG, json.dumps(history))
    return previous


def champion_definition(names: Iterable[str]) -> FeatureDefinition | None:
    """The feature definition stored with the first of these models' champions that has one.

    MLflow must point at the store already; None when no champion stored a definition.
    """
    from mlflow import MlflowClient

    client = MlflowClient()
    for name in names:
        if (version := champion_version(client, name)) is None:
            continue
        found = from_model_metadata(load_version(client, name, version).metadata)
        if found is not None:
            return found
    return None


# Where the native model files sit in a registered version: the LightGBM flavour's layout,
# which serving, drift and ScoringModel.load read (`extra_files/model.json`, ...).
NATIVE_DIR = "extra_files"


def save_scores_model(
    model_dir: Path, out: Path, *, model: ScoringModel, rules: RulesConfig, example: pd.DataFrame
) -> None:
    """Write an MLflow model folder at `out`: the scores pyfunc (models from code) over the
    native files of `model_dir`, plus the LightGBM flavour on the same model.txt.

    `mlflow.pyfunc.load_model` / `spark_udf` on the registered version give `nrr score`'s
    calibrated probability and rule score; `mlflow.lightgbm.load_model` the bare booster.
    Nothing is pickled: MLflow stores the code file and the native files.
    """
    import mlflow.pyfunc
    from mlflow.models import Model

    from models.scoring.spark_udf import (
        CODE_FILE,
        NATIVE_ARTIFACT,
        RULES_FILE,
        RULES_PATH_KEY,
        input_columns,
        signature,
    )

    role = str(model.metadata["target"])
    # The rules the fallback map was fitted with travel with it.
    (model_dir / RULES_FILE).write_text(json.dumps(rules.model_dump(mode="json")))
    columns = input_columns(model.feature_names, rules)
    versions = package_versions()
    mlflow.pyfunc.save_model(
        path=str(out),
        python_model=str(CODE_FILE),
        artifacts={NATIVE_ARTIFACT: str(model_dir)},
        signature=signature(columns, role),
        input_example=example.loc[:, [c for c in columns if c in example.columns]].head(5),
        model_config={RULES_PATH_KEY: ""},
        metadata={"target": role},
        # Explicit requirements: inferring them re-imports the model in a subprocess (slow).
        pip_requirements=[
            f"{name}=={versions[name]}"
            for name in ("nrr-engine", "lightgbm", "mlflow")
            if versions[name] != "absent"
        ],
    )
    # MLflow copies artifacts under artifacts/; move them where the native layout has them
    # and point the pyfunc there, so every reader of extra_files/ keeps working.
    mlmodel = Model.load(str(out))
    entry = mlmodel.flavors["python_function"]["artifacts"][NATIVE_ARTIFACT]
    (out / entry["path"]).rename(out / NATIVE_DIR)
    entry["path"] = NATIVE_DIR
    if model.linear is None:
        mlmodel.add_flavor(
            "lightgbm",
            lgb_version=versions["lightgbm"],
            data=f"{NATIVE_DIR}/model.txt",
            model_class="lightgbm.basic.Booster",
            code=None,
        )
    mlmodel.save(str(out / "MLmodel"))
    if not any((out / "artifacts").iterdir()):
        (out / "artifacts").rmdir()


def register_scores_model(
    name: str, model_dir: Path, *, model: ScoringModel, rules: RulesConfig, example: pd.DataFrame
) -> str:
    """Log the scores model in the active run and register it as a new version of `name`."""
    import mlflow
    from mlflow import MlflowClient

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register_scores_model runs inside the training run")
    path = f"{model.metadata['target']}-model"
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "model"
        save_scores_model(model_dir, local, model=model, rules=rules, example=example)
        mlflow.log_artifacts(str(local), artifact_path=path)
    client = MlflowClient()
    if not client.search_registered_models(filter_string=f"name = '{name}'"):
        client.create_registered_model(name)
    created = client.create_model_version(
        name, source=f"{run.info.artifact_uri}/{path}", run_id=run.info.run_id
    )
    return str(created.version)
