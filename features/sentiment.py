"""Ticket sentiment from free text (VADER compound score), used when no score is given."""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache

import numpy as np
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    # Built on first use, not at import: it reads the lexicon file.
    return SentimentIntensityAnalyzer()


def score_texts(texts: Iterable[str | None]) -> np.ndarray:
    """VADER compound score in [-1, 1] per text; NaN for a missing or blank text."""
    analyzer = _analyzer()
    scores = [
        float(analyzer.polarity_scores(text)["compound"])
        if isinstance(text, str) and text.strip()
        else np.nan
        for text in texts
    ]
    return np.asarray(scores, dtype=np.float64)
