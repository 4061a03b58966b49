"""A registered model's scores as an MLflow pyfunc, so `mlflow.pyfunc.spark_udf` gives `nrr score`'s numbers.

Each registered version (`nrr-churn`, `nrr-expansion`) is a models-from-code pyfunc
(`pyfunc_code.py`, no pickle) whose artifact is the native model folder serving reads
(model.txt, model.json, the rule artefacts). `predict` takes raw snapshot columns
(categories as strings) and returns, per row, the role's calibrated probability, where it
came from ("model" or "rules") and the role's rule score: health for churn, PQA for
expansion. The pieces are `nrr score`'s own: `ScoringModel.predict_proba` on
`ScoringModel.matrix_array`, `ScoreToProbability` over the rule score when the model cannot
answer, `health_columns` / `pqa_columns` with the trained health normaliser.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.registry import BY_NAME
from models.rules.config import RulesConfig, load_rules_config
from models.rules.health import HealthNormaliser, health_columns
from models.rules.pqa import pqa_columns
from models.scoring.booster import META_FILE, ScoringModel
from models.scoring.calibration import ScoreToProbability

if TYPE_CHECKING:
    from mlflow.models import ModelSignature

# The files training writes beside model.json (serving.registry_client reads the same names).
NORMALISER_FILE = "health_normaliser.json"
FALLBACK_FILE = "fallback_calibration.json"
# The rules the model was trained with: its fallback map was fitted on their scores.
RULES_FILE = "rules.json"
# The pyfunc's artifact: the native model folder (MLflow hands its local path to load_context).
NATIVE_ARTIFACT = "native"
# The models-from-code file MLflow copies into every registered version.
CODE_FILE = Path(__file__).with_name("pyfunc_code.py")
# model_config key: a rules YAML to use instead of the stored rules (as NRR_RULES_PATH does
# for `nrr score`); "" keeps the stored ones.
RULES_PATH_KEY = "rules_path"

# Per role: probability, its source, the rule score and its band, named as in `nrr score`'s CSV.
OUTPUTS: dict[str, tuple[str, str, str, str]] = {
    "churn": ("churn_probability", "churn_source", "health_score", "health_band"),
    "expansion": ("expansion_probability", "expansion_source", "pqa_score", "pqa_band"),
}


def rule_features(rules: RulesConfig) -> set[str]:
    """The snapshot columns the health and PQA scores read."""
    names = {s for c in rules.health.categories.values() for s in c.signals}
    names |= {item.feature for item in rules.pqa.items.values()}
    return names | {"segment"}  # segment picks the health weights' variant


def input_columns(model_features: Sequence[str], rules: RulesConfig) -> list[str]:
    """The columns `predict` reads: the model's features and the rule scores' inputs, in
    registry order."""
    wanted = set(model_features) | rule_features(rules)
    return [name for name in BY_NAME if name in wanted]


def signature(columns: Sequence[str], role: str) -> ModelSignature:
    """Every input optional (a snapshot may lack a table's features: the rules answer then);
    categories are strings, as in a snapshot, everything else a double."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs: list[Any] = [
        ColSpec("string" if BY_NAME[name].kind == "category" else "double", name, required=False)
        for name in columns
    ]
    prob, source, score, band = OUTPUTS[role]
    outputs: list[Any] = [
        ColSpec("double", prob),
        ColSpec("string", source),
        ColSpec("double", score),
        ColSpec("string", band),
    ]
    return ModelSignature(inputs=Schema(inputs), outputs=Schema(outputs))


@dataclass(frozen=True)
class RoleScorer:
    """One role's model, fallback map, health normaliser and rules: what `predict` needs."""

    role: str
    model: ScoringModel
    fallback: ScoreToProbability | None
    normaliser: HealthNormaliser | None
    rules: RulesConfig

    @classmethod
    def load(cls, folder: Path, *, rules_path: Path | None = None) -> RoleScorer:
        """Read a native model folder (as training writes it); `rules_path` overrides its rules."""
        metas = sorted(Path(folder).rglob(META_FILE))
        if not metas:
            raise FileNotFoundError(f"no {META_FILE} under {folder}")
        home = metas[0].parent
        model = ScoringModel.load(home)
        role = str(model.metadata.get("target", ""))
        if role not in OUTPUTS:
            raise ValueError(f"{home / META_FILE}: target {role!r} is not one of {list(OUTPUTS)}")
        if rules_path is not None:
            rules = load_rules_config(rules_path)
        elif (home / RULES_FILE).is_file():
            rules = RulesConfig.model_validate(json.loads((home / RULES_FILE).read_text()))
        else:  # a version registered before the rules were stored: the packaged defaults
            rules = load_rules_config()
        fallback = _json(home / FALLBACK_FILE)
        normaliser = _json(home / NORMALISER_FILE)
        if role == "churn" and normaliser is None:
            # nrr score would anchor on the rows it scores; a UDF sees one batch at a time.
            raise FileNotFoundError(f"{home}: {NORMALISER_FILE} missing, health cannot be scored")
        return cls(
            role=role,
            model=model,
            fallback=None if fallback is None else ScoreToProbability.from_dict(fallback),
            normaliser=None if normaliser is None else HealthNormaliser.from_dict(normaliser),
            rules=rules,
        )

    def score(self, rows: pd.DataFrame) -> pd.DataFrame:
        """Probability, source, rule score and band per row, as `nrr score` reports them."""
        rows = rows.reset_index(drop=True)
        prob_col, source_col, score_col, band_col = OUTPUTS[self.role]
        if self.role == "churn":
            assert self.normaliser is not None  # load() refuses a churn folder without it
            rule = health_columns(rows, config=self.rules, normaliser=self.normaliser)
        else:
            rule = pqa_columns(rows, config=self.rules)
        score = np.asarray(rule[score_col], dtype="float64")
        probability = self._model_probability(rows)
        source = "model"
        if probability is None:
            probability, source = self._fallback_probability(score), "rules"
        return pd.DataFrame(
            {
                prob_col: probability,
                source_col: [source] * len(rows),
                score_col: score,
                band_col: [None if pd.isna(b) else str(b) for b in rule[band_col]],
            }
        )

    def _model_probability(self, rows: pd.DataFrame) -> np.ndarray | None:
        # As `nrr score` (serving.state.align_bundle, serving.scoring.role_scores): the model
        # answers when the rows carry every one of its feature columns (a value may be
        # missing, LightGBM routes it) and the values are usable; otherwise the rules do.
        if any(name not in rows.columns for name in self.model.feature_names):
            return None
        try:
            return np.asarray(
                self.model.predict_proba(self.model.matrix_array(rows)), dtype="float64"
            )
        except ValueError:
            return None

    def _fallback_probability(self, score: np.ndarray) -> np.ndarray:
        if self.fallback is None:  # nrr score reports no probability then
            return np.full(len(score), np.nan)
        values = np.asarray(self.fallback.predict(score), dtype="float64")
        return np.where(np.isfinite(values), values, np.nan)


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None
