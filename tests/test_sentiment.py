"""VADER ticket sentiment: direction on clear texts, range, and missing text."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sentiment import score_texts


def test_clear_texts_score_in_the_right_direction() -> None:
    angry, happy = score_texts(["terrible, broken, furious", "love it, great support, thanks"])
    assert angry < 0 < happy


def test_scores_lie_in_minus_one_to_one() -> None:
    texts = [
        "ok",
        "worst worst worst!!! hate hate",
        "best best amazing!!!",
        "the invoice is attached",
    ]
    scores = score_texts(texts)
    assert scores.shape == (4,) and scores.dtype == np.float64
    assert ((scores >= -1) & (scores <= 1)).all()


def test_missing_or_blank_text_is_nan() -> None:
    scores = score_texts([None, "", "   ", pd.NA, "thanks a lot"])  # type: ignore[list-item]
    assert np.isnan(scores[:4]).all() and not np.isnan(scores[4])


def test_empty_input_gives_empty_array() -> None:
    assert score_texts([]).shape == (0,)
