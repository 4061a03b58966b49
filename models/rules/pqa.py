"""Product-qualified account (PQA) score: docs/DOMAIN.md points mapped onto snapshot features."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.rules.config import PqaItem, RulesConfig
from models.rules.health import band_names, numeric_column


def _item_points(frame: Any, item: PqaItem) -> np.ndarray:
    # An absent or NaN feature earns no points (neither plus nor minus).
    values = numeric_column(frame, item.feature)
    if item.mode == "flag":
        points = np.where(values >= item.at_least, item.points, 0.0)
    else:
        used = values if item.window is None else np.clip(values, 0.0, item.window)
        idle = 0.0 if item.window is None else item.window - used
        points = item.points * used + item.points_missing * idle
    return np.where(np.isnan(values), 0.0, points)


def score_pqa(snapshots: pd.DataFrame, *, config: RulesConfig) -> pd.DataFrame:
    """PQA score (capped to the configured range) and band per row."""
    columns = pqa_columns(snapshots, config=config)
    out = pd.DataFrame(index=snapshots.index)
    out["pqa_score"] = columns["pqa_score"]
    out["pqa_band"] = pd.array(columns["pqa_band"], dtype="string")
    return out


def pqa_columns(snapshots: Any, *, config: RulesConfig) -> dict[str, np.ndarray]:
    """`score_pqa` as plain arrays, of a DataFrame or a `models.table.Table`."""
    spec = config.pqa
    total = np.zeros(len(snapshots))
    for item in spec.items.values():
        total = total + _item_points(snapshots, item)
    score = np.clip(total, spec.cap_min, spec.cap_max)
    return {"pqa_score": score, "pqa_band": band_names(score, spec.bands)}
