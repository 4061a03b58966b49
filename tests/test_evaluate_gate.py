"""The promotion gate on the pooled interval (promotion.interval): a gain inside the noise
keeps the champion; the paired interval is checked against a hand-built case."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import PromotionConfig
from training.intervals import paired_auc_gain
from training.registry import decide


def test_a_gain_within_the_noise_keeps_the_champion() -> None:
    config = PromotionConfig(min_auc_delta=0.002, interval=True)
    kept = decide(
        challenger=(0.84, 0.05), champion=(0.83, 0.05), config=config, auc_gain_low=-0.004
    )
    assert not kept.promoted and "within the noise" in kept.reason
    assert kept.auc_gain_low == -0.004
    won = decide(challenger=(0.84, 0.05), champion=(0.83, 0.05), config=config, auc_gain_low=0.003)
    assert won.promoted
    # Without the interval the point estimates decide, as before.
    assert decide(challenger=(0.84, 0.05), champion=(0.83, 0.05), config=config).promoted


def test_paired_gain_interval() -> None:
    rng = np.random.default_rng(0)
    n = 3000
    y = (rng.random(n) < 0.1).astype(float)
    signal = y + rng.normal(scale=1.0, size=n)
    accounts = np.arange(n) // 3
    # Identical scorers: gain 0 on every resample.
    assert paired_auc_gain(accounts, y, signal, signal, resamples=50) == (0.0, 0.0, 0.0)
    # A clearly better scorer: the whole interval above 0; a noisier copy: below.
    better = y * 2 + rng.normal(scale=1.0, size=n)
    gain, lo, hi = paired_auc_gain(accounts, y, better, signal, resamples=200, seed=1)
    assert lo > 0 and lo < gain < hi
    worse = signal + rng.normal(scale=2.0, size=n)
    assert paired_auc_gain(accounts, y, worse, signal, resamples=200, seed=1)[2] < 0
    with pytest.raises(ValueError):
        paired_auc_gain(accounts, y, signal, signal, resamples=0)
