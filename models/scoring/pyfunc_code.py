"""Models-from-code file of the registered scores pyfunc: MLflow copies it into each version
and runs it at load time (no pickled object); the scoring is `models.scoring.spark_udf`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel

from models.scoring.spark_udf import NATIVE_ARTIFACT, RULES_PATH_KEY, RoleScorer


class ScoresModel(PythonModel):  # type: ignore[misc]
    """Loads a RoleScorer from the version's native model folder and scores pandas batches."""

    def load_context(self, context: Any) -> None:
        rules = (context.model_config or {}).get(RULES_PATH_KEY) or None
        self.scorer = RoleScorer.load(
            Path(context.artifacts[NATIVE_ARTIFACT]),
            rules_path=None if rules is None else Path(rules),
        )

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.scorer.score(pd.DataFrame(model_input))


set_model(ScoresModel())
