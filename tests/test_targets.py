"""NRR targets per segment: the Monte Carlo's chance of reaching each (issue 16 part 5).

The books below have outcomes whose distribution is known in closed form (churn only, or
nothing at all), so the chances are checked against hand-computed probabilities.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.outcomes.config import OutcomesConfigError, TargetsConfig, load_targets
from models.outcomes.targets import (
    LEVELS,
    NO_ACCOUNTS,
    NO_TARGET,
    probability_at_least,
    target_probabilities,
)


def _book(segments: list[str], p_churn: list[float], arr: list[float]) -> pd.DataFrame:
    n = len(segments)
    return pd.DataFrame(
        {
            "account_id": [f"A{i}" for i in range(n)],
            "segment": segments,
            "arr": arr,
            "churn_probability": p_churn,
            "expansion_probability": np.zeros(n),
            "contraction_probability": np.zeros(n),
            "expand_mu": np.full(n, 0.2),
            "expand_sigma": np.full(n, 0.1),
            "contract_mu": np.full(n, -0.2),
            "contract_sigma": np.full(n, 0.1),
        }
    )


def _targets(rows: list[dict]) -> TargetsConfig:
    return TargetsConfig.model_validate({"targets": rows})


def test_probability_at_least_reads_the_quantile_grid() -> None:
    values = np.quantile(np.arange(100_000) / 100_000, LEVELS)  # uniform on [0, 1)
    assert probability_at_least(values, 0.25) == pytest.approx(0.75, abs=2e-3)
    assert probability_at_least(values, -1.0) > 0.999
    assert probability_at_least(values, 2.0) < 0.001


def test_chances_match_closed_form_churn_only_book() -> None:
    # one SMB account that churns with probability 0.3 per quarter, nothing else:
    # quarter NRR is 0 (p 0.3) or 1 (p 0.7); after four quarters 1 with p 0.7**4
    # Enterprise: never churns, NRR exactly 1 every quarter
    book = _book(["SMB", "Enterprise"], [0.3, 0.0], [1000.0, 5000.0])
    targets = _targets(
        [
            {"segment": "smb", "nrr": 0.9, "owner": "Sam", "quarter_nrr": 0.5},
            {"segment": "Enterprise", "nrr": 1.0, "owner": "Eve"},
            {"segment": "Mid-Market", "nrr": 1.1, "owner": "Mo"},
        ]
    )
    got = target_probabilities(
        book, targets=targets, renewal=None, shock=None, draws=20_000, seed=3
    ).set_index("segment")
    assert got.loc["smb", "p_quarter"] == pytest.approx(0.7, abs=0.015)
    assert got.loc["smb", "p_year"] == pytest.approx(0.7**4, abs=0.015)
    assert got.loc["smb", "owner"] == "Sam"
    assert got.loc["smb", "accounts"] == 1
    # NRR exactly at the target counts as reaching it
    assert got.loc["Enterprise", "p_year"] > 0.99
    assert got.loc["Enterprise", "quarter_target"] == pytest.approx(1.0)
    assert got.loc["Enterprise", "status"] == "on track"
    assert got.loc["smb", "status"] == "off track"  # 24% < 30%
    assert got.loc["Mid-Market", "status"] == NO_ACCOUNTS
    assert np.isnan(got.loc["Mid-Market", "p_year"])


def test_pooled_target_and_segments_without_target() -> None:
    book = _book(["SMB", "Enterprise"], [0.5, 0.0], [1000.0, 1000.0])
    targets = _targets([{"segment": "All", "nrr": 1.0, "owner": "VP", "quarter_nrr": 1.0}])
    got = target_probabilities(
        book, targets=targets, renewal=None, shock=None, draws=20_000, seed=1
    ).set_index("segment")
    # pooled NRR is 1 when the SMB account stays (p 0.5), 0.5 when it churns
    assert got.loc["All", "p_quarter"] == pytest.approx(0.5, abs=0.015)
    assert got.loc["All", "starting_arr"] == 2000.0
    assert set(got.index) == {"All", "Enterprise", "SMB"}
    assert got.loc["SMB", "status"] == NO_TARGET


def test_quarter_target_defaults_to_the_annual_pace() -> None:
    config = _targets([{"segment": "SMB", "nrr": 1.1, "owner": "x"}])
    assert config.targets[0].next_quarter == pytest.approx(1.1**0.25)


def test_packaged_targets_load_and_bad_files_name_the_key(tmp_path: Path) -> None:
    assert {t.segment for t in load_targets().targets} >= {"All"}
    bad = tmp_path / "t.yaml"
    bad.write_text("targets:\n  - {segment: SMB, nrr: 1.1}\n")
    with pytest.raises(OutcomesConfigError, match=r"targets\.0\.owner: required"):
        load_targets(bad)
    bad.write_text(
        "targets:\n  - {segment: SMB, nrr: 1.1, owner: a}\n  - {segment: smb, nrr: 1, owner: b}\n"
    )
    with pytest.raises(OutcomesConfigError, match="one target only"):
        load_targets(bad)
    with pytest.raises(OutcomesConfigError, match="no such file"):
        load_targets(tmp_path / "missing.yaml")


def test_report_section_reads_the_least_likely_target() -> None:
    from serving.report_html import targets_section

    book = _book(["SMB", "Enterprise"], [0.3, 0.0], [1000.0, 5000.0])
    targets = _targets(
        [
            {"segment": "SMB", "nrr": 0.9, "owner": "Sam", "quarter_nrr": 0.5},
            {"segment": "Enterprise", "nrr": 1.0, "owner": "Eve"},
        ]
    )
    table = target_probabilities(
        book, targets=targets, renewal=None, shock=None, draws=5000, seed=0
    )
    section = targets_section(table)
    assert section.reading.startswith("1 of 2 NRR targets on track; the least likely is SMB (Sam)")
    assert "&gt;99%" in section.table  # Enterprise: never below its target (escaped ">")
