"""Product-qualified account (PQA) score: DOMAIN.md points mapped onto snapshot features."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.health import band_of, numeric_column
from models.rules_config import PqaItem, RulesConfig


def _item_points(frame: pd.DataFrame, item: PqaItem) -> np.ndarray:
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
    spec = config.pqa
    total = np.zeros(len(snapshots))
    for item in spec.items.values():
        total = total + _item_points(snapshots, item)
    score = np.clip(total, spec.cap_min, spec.cap_max)
    out = pd.DataFrame(index=snapshots.index)
    out["pqa_score"] = score
    out["pqa_band"] = band_of(score, spec.bands).array
    return out
