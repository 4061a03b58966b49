"""NRR decomposition: hand-computed bridge, identity, splits, grace window, cohorts, bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments import DEFAULT_RULES
from models.revenue.nrr import (
    NrrBands,
    arr_timeline,
    available_splits,
    best_and_worst_cohorts,
    cohort_heatmap,
    decompose,
    nrr_band,
    segment_context,
)
from models.rules.config import load_rules_config

T = pd.Timestamp
FLOWS = ["new_arr", "reactivation_arr", "expansion_arr", "contraction_arr", "churned_arr"]


def make_subscriptions(rows: list[tuple[str, str, str | None, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "start_at", "end_at", "arr", "plan"])
    return frame.assign(
        start_at=pd.to_datetime(frame["start_at"]), end_at=pd.to_datetime(frame["end_at"])
    )


def make_accounts(rows: list[tuple[str, str, str]], **extra: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "segment", "created_at"])
    frame["created_at"] = pd.to_datetime(frame["created_at"])
    return frame.assign(**extra)


def fixture_company() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seven accounts covering every flow; the expected bridges are worked out by hand below."""
    subs = make_subscriptions(
        [
            # A: new on Jan 10, mid-term upsell on Feb 15
            ("A", "2024-01-10", "2024-02-15", 1200, "Starter"),
            ("A", "2024-02-15", None, 1800, "Professional"),
            # B: churns on Mar 10 (no return)
            ("B", "2023-12-01", "2024-03-10", 1000, "Starter"),
            # C: 19-day gap (< grace) across Feb 1, renews lower: contraction, not churn + new
            ("C", "2023-11-01", "2024-02-01", 2400, "Enterprise"),
            ("C", "2024-02-20", None, 2000, "Enterprise"),
            # D: churns Jan 15, returns Apr 10 (86-day gap): churn then reactivation
            ("D", "2023-10-01", "2024-01-15", 600, "Starter"),
            ("D", "2024-04-10", None, 900, "Starter"),
            # E: new May 20, downgrade Jun 10
            ("E", "2024-05-20", "2024-06-10", 500, "Starter"),
            ("E", "2024-06-10", None, 300, "Starter"),
            # F: churns Apr 15, returns Jun 5 higher: churn and return inside Q2
            ("F", "2023-06-01", "2024-04-15", 1000, "Professional"),
            ("F", "2024-06-05", None, 1500, "Professional"),
            # G: 16-day gap across the quarter boundary Apr 1: continuation
            ("G", "2024-01-01", "2024-03-25", 800, "Starter"),
            ("G", "2024-04-10", None, 800, "Starter"),
        ]
    )
    accounts = make_accounts(
        [
            ("A", "SMB", "2024-01-10"),
            ("B", "SMB", "2023-12-01"),
            ("C", "Enterprise", "2023-11-01"),
            ("D", "SMB", "2023-10-01"),
            ("E", "SMB", "2024-05-20"),
            ("F", "Mid-Market", "2023-06-01"),
            ("G", "SMB", "2024-01-01"),
        ],
        industry=["Tech", "Tech", "Finance", "Retail", "Tech", "Finance", "Retail"],
    )
    return subs, accounts


DATA_END = T("2024-07-01")

# starting, new, reactivation, expansion, contraction, churned, ending, logos, churned logos
EXPECTED_MONTHS = {
    "2024-01": (5800, 1200, 0, 0, 0, 600, 6400, 5, 1),
    "2024-02": (6400, 0, 0, 600, 400, 0, 6600, 5, 0),
    "2024-03": (6600, 0, 0, 0, 0, 1000, 5600, 5, 1),
    "2024-04": (5600, 0, 900, 0, 0, 1000, 5500, 4, 1),
    "2024-05": (5500, 500, 0, 0, 0, 0, 6000, 4, 0),
    "2024-06": (6000, 0, 1500, 0, 200, 0, 7300, 5, 0),
}
EXPECTED_QUARTERS = {
    "2024Q1": (5800, 1800, 0, 0, 400, 1600, 5600, 5, 2),
    "2024Q2": (5600, 300, 2400, 0, 0, 1000, 7300, 4, 1),
}
COLUMNS = [
    "starting_arr",
    *FLOWS,
    "ending_arr",
    "starting_logos",
    "churned_logos",
]


@pytest.mark.parametrize(
    ("freq", "expected"), [("month", EXPECTED_MONTHS), ("quarter", EXPECTED_QUARTERS)]
)
def test_decompose_matches_hand_computed_bridge(freq: str, expected: dict) -> None:
    subs, accounts = fixture_company()
    out = decompose(subs, accounts, data_end=DATA_END, freq=freq, start=T("2024-01-01"))  # type: ignore[arg-type]
    assert list(out["period_label"]) == list(expected)
    for label, values in expected.items():
        row = out.set_index("period_label").loc[label]
        got = tuple(row[c] for c in COLUMNS)
        assert got == values, label
        start, new, react, exp, con, churn = values[:6]
        assert row["nrr"] == pytest.approx((start + exp - con - churn) / start)
        assert row["grr"] == pytest.approx((start - con - churn) / start)
        assert row["net_new_arr"] == new + react + exp - con - churn
        assert row["logo_churn_rate"] == pytest.approx(values[8] / values[7])


def test_timeline_numbers_spells_and_bridges_short_gaps() -> None:
    subs, _ = fixture_company()
    tl = arr_timeline(subs, data_end=DATA_END).set_index(["account_id", "start_at"])
    assert tl.loc[("C", T("2023-11-01")), "end_at"] == T("2024-02-20")
    assert tl.loc[("G", T("2024-01-01")), "end_at"] == T("2024-04-10")
    assert tl.loc[("D", T("2024-04-10")), "spell"] == 1
    assert tl.loc[("F", T("2024-06-05")), "spell"] == 1
    assert tl.loc[("C", T("2024-02-20")), "spell"] == 0


def random_history(seed: int, n_accounts: int = 40) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_accounts):
        t = T("2023-01-01") + pd.Timedelta(days=int(rng.integers(0, 300)))
        for _ in range(int(rng.integers(1, 5))):
            length = pd.Timedelta(days=int(rng.integers(10, 200)))
            arr = float(rng.choice([0.0, 99.5, 1000.25, 2400.0, 7777.7]))
            rows.append((f"a{i}", t, t + length, arr, str(rng.choice(["Starter", "Pro"]))))
            t = t + length + pd.Timedelta(days=int(rng.choice([0, 0, 5, 20, 45, 120])))
        if rng.random() < 0.5:
            rows[-1] = (*rows[-1][:2], pd.NaT, *rows[-1][3:])
    subs = pd.DataFrame(rows, columns=["account_id", "start_at", "end_at", "arr", "plan"])
    subs["end_at"] = pd.to_datetime(subs["end_at"])
    accounts = make_accounts(
        [(f"a{i}", str(rng.choice(["SMB", "Enterprise"])), "2023-01-01") for i in range(n_accounts)]
    )
    return subs, accounts


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("freq", ["month", "quarter"])
def test_bridge_identity_holds_for_every_row(seed: int, freq: str) -> None:
    subs, accounts = random_history(seed)
    for by in (None, "segment", "plan"):
        out = decompose(subs, accounts, data_end=T("2025-06-15"), freq=freq, by=by)  # type: ignore[arg-type]
        rebuilt = (
            out["starting_arr"]
            + out["new_arr"]
            + out["reactivation_arr"]
            + out["expansion_arr"]
            - out["contraction_arr"]
            - out["churned_arr"]
        )
        np.testing.assert_allclose(rebuilt, out["ending_arr"], rtol=1e-12, atol=1e-9)
        assert (out[FLOWS] >= 0).all().all()
    pooled = decompose(subs, accounts, data_end=T("2025-06-15"), freq=freq)  # type: ignore[arg-type]
    np.testing.assert_allclose(pooled["ending_arr"].iloc[:-1], pooled["starting_arr"].iloc[1:])
    assert pooled["period_end"].max() <= T("2025-06-15")


def test_splits_sum_to_pooled_and_name_combined_cohorts() -> None:
    subs, accounts = fixture_company()
    pooled = decompose(subs, accounts, data_end=DATA_END, freq="quarter")
    split = decompose(subs, accounts, data_end=DATA_END, freq="quarter", by="segment")
    summed = split.groupby("period_label")[["starting_arr", *FLOWS, "ending_arr"]].sum()
    expected = pooled.set_index("period_label").loc[summed.index, summed.columns]
    pd.testing.assert_frame_equal(summed, expected, check_dtype=False)
    combined = decompose(
        subs, accounts, data_end=DATA_END, freq="quarter", by=["segment", "industry", "cohort"]
    )
    assert "Enterprise - Finance - 2023Q4" in set(combined["group"])
    assert "SMB - Retail - 2024Q1" in set(combined["group"])


def test_plan_split_uses_plan_at_period_start() -> None:
    subs, accounts = fixture_company()
    out = decompose(subs, accounts, data_end=DATA_END, freq="month", by="plan")
    feb = out[out["period_label"] == "2024-02"].set_index("plan")
    # A upsold Starter -> Professional in February: the expansion belongs to Starter
    assert feb.loc["Starter", "expansion_arr"] == 600
    assert feb.loc["Professional", "expansion_arr"] == 0


def test_absent_split_column_is_dropped_or_named() -> None:
    subs, accounts = fixture_company()
    no_industry = accounts.drop(columns="industry")
    assert "industry" not in available_splits(no_industry)
    assert "industry" not in available_splits(accounts.assign(industry=pd.NA))
    with pytest.raises(ValueError, match="industry"):
        decompose(subs, no_industry, data_end=DATA_END, by="industry")
    with pytest.raises(ValueError, match="unknown split"):
        decompose(subs, accounts, data_end=DATA_END, by="region")


def test_trailing_gap_within_grace_at_data_end_is_not_yet_churn() -> None:
    subs = make_subscriptions([("H", "2024-01-01", "2024-06-20", 500, "Starter")])
    accounts = make_accounts([("H", "SMB", "2024-01-01")])
    early = decompose(subs, accounts, data_end=T("2024-07-05"), start=T("2024-06-01"))
    assert early["churned_arr"].sum() == 0 and early["ending_arr"].iloc[-1] == 500
    late = decompose(subs, accounts, data_end=T("2024-08-01"), start=T("2024-06-01"))
    assert late.set_index("period_label").loc["2024-06", "churned_arr"] == 500


def test_grace_zero_keeps_contiguous_renewals_and_churns_on_any_gap() -> None:
    subs = make_subscriptions(
        [
            ("K", "2024-01-01", "2024-02-10", 100, "Starter"),
            ("K", "2024-02-10", "2024-03-10", 100, "Starter"),
            ("K", "2024-03-11", None, 100, "Starter"),
        ]
    )
    accounts = make_accounts([("K", "SMB", "2024-01-01")])
    zero = decompose(subs, accounts, data_end=T("2024-05-01"), grace_days=0).set_index(
        "period_label"
    )
    assert zero.loc["2024-02", "churned_arr"] == 0
    assert zero.loc["2024-03", "churned_arr"] == 100
    assert zero.loc["2024-03", "reactivation_arr"] == 100
    default = decompose(subs, accounts, data_end=T("2024-05-01"))
    assert default[["churned_arr", "reactivation_arr"]].sum().sum() == 0


def test_zero_arr_period_counts_as_a_gap() -> None:
    subs = make_subscriptions(
        [
            ("Z", "2024-01-01", "2024-02-01", 100, "Starter"),
            ("Z", "2024-02-01", "2024-05-01", 0, "Free"),
            ("Z", "2024-05-01", None, 100, "Starter"),
        ]
    )
    accounts = make_accounts([("Z", "SMB", "2024-01-01")])
    out = decompose(subs, accounts, data_end=T("2024-06-01")).set_index("period_label")
    assert out.loc["2024-01", "churned_arr"] == 100
    assert out.loc["2024-04", "reactivation_arr"] == 100


def test_bad_subscriptions_raise_clear_errors() -> None:
    subs, accounts = fixture_company()
    overlap = pd.concat(
        [subs, make_subscriptions([("A", "2024-03-01", "2024-04-01", 10, "Starter")])]
    )
    with pytest.raises(ValueError, match="overlap"):
        decompose(overlap, accounts, data_end=DATA_END)
    with pytest.raises(ValueError, match="datetime64"):
        decompose(subs.assign(start_at=subs["start_at"].astype(str)), accounts, data_end=DATA_END)
    with pytest.raises(ValueError, match="arr"):
        decompose(subs.assign(arr=-1.0), accounts, data_end=DATA_END)
    with pytest.raises(ValueError, match="plan"):
        decompose(subs.drop(columns="plan"), accounts, data_end=DATA_END)


def test_cohort_heatmap_matches_hand_computed_retention() -> None:
    subs = make_subscriptions(
        [
            ("X", "2024-01-01", "2024-03-01", 1000, "Starter"),
            ("X", "2024-03-01", None, 500, "Starter"),
            ("Y", "2024-02-01", "2024-04-01", 1000, "Starter"),
            ("W", "2024-04-15", None, 300, "Starter"),
        ]
    )
    accounts = make_accounts(
        [("X", "SMB", "2024-01-01"), ("Y", "SMB", "2024-02-01"), ("W", "SMB", "2024-04-15")]
    )
    heat = cohort_heatmap(subs, accounts, data_end=T("2024-06-01"))
    q1 = heat[heat["cohort"] == "2024Q1"].set_index("months_since_start")
    assert list(q1.index) == [0, 1, 2, 3, 4]  # month 5 of Y lies after data_end
    assert list(q1["retention"]) == [1.0, 1.0, 0.25, 0.25, 0.25]
    assert (q1["starting_arr"] == 2000).all()
    q2 = heat[heat["cohort"] == "2024Q2"]
    assert list(q2["months_since_start"]) == [0, 1]
    assert (q2["retention"] == 1.0).all()


def test_best_and_worst_cohorts_rank_trailing_nrr_with_minimums() -> None:
    rows: list[tuple[str, str, str | None, float, str]] = []
    acc: list[tuple[str, str, str]] = []
    # segment -> (accounts, ARR a year ago, ARR now): NRR 1.5, 1.0, 0.5, 0.0 (too small)
    plan = {"Up": (3, 100, 150), "Flat": (3, 100, 100), "Down": (3, 100, 50), "Tiny": (1, 10, 0)}
    for seg, (count, before, after) in plan.items():
        for i in range(count):
            aid = f"{seg}{i}"
            acc.append((aid, seg, "2023-01-01"))
            rows.append((aid, "2023-01-01", "2024-03-01", float(before), "Starter"))
            if after:
                rows.append((aid, "2024-03-01", None, float(after), "Starter"))
    subs, accounts = make_subscriptions(rows), make_accounts(acc)
    out = best_and_worst_cohorts(
        subs, accounts, data_end=T("2024-07-10"), by=("segment",), min_logos=2, n=1
    )
    assert out.window_start == T("2023-07-01") and out.window_end == T("2024-07-01")
    assert list(out.best["group"]) == ["Up"] and out.best["nrr"].iloc[0] == pytest.approx(1.5)
    assert list(out.worst["group"]) == ["Down"]
    assert "Tiny" not in set(out.ranked["group"])
    # industry is absent: the split is dropped instead of failing
    both = best_and_worst_cohorts(subs, accounts, data_end=T("2024-07-10"), min_logos=2, n=2)
    assert set(both.best["group"]) == {"Up - 2023Q1", "Flat - 2023Q1"}


@pytest.mark.parametrize(
    ("nrr", "band", "word"),
    [
        (0.85, "below 90%", "Fix gross retention"),
        (0.90, "90-100%", "Stabilise"),
        (1.00, "100-110%", "Grow"),
        (1.15, "110-120%", "Optimise"),
        (1.31, "120%+", "Compound"),
    ],
)
def test_nrr_band_follows_domain_bands(nrr: float, band: str, word: str) -> None:
    # The shipped rules file is the one place the bands live.
    name, strategy = nrr_band(nrr, bands=load_rules_config().revenue.bands())
    assert name == band and strategy.startswith(word)


def test_nrr_band_accepts_custom_bands_and_rejects_bad_ones() -> None:
    bands = NrrBands(thresholds=(1.0,), names=("low", "high"), strategies=("fix", "grow"))
    assert nrr_band(0.99, bands=bands) == ("low", "fix")
    with pytest.raises(ValueError):
        NrrBands(thresholds=(1.0, 0.9), names=("a", "b", "c"), strategies=("a", "b", "c"))
    with pytest.raises(ValueError):
        nrr_band(float("nan"), bands=bands)


def test_segment_context_places_nrr_against_benchmarks() -> None:
    shipped = load_rules_config().revenue.benchmarks()
    mid = segment_context(1.10, "mid market", benchmarks=shipped)
    assert mid is not None and mid.segment == "Mid-Market"
    assert mid.position == "median to top quartile" and "108%" in mid.text
    smb = segment_context(1.20, "SMB", benchmarks=shipped)
    assert smb is not None and smb.position == "best in class"
    ent = segment_context(1.0, "enterprise", benchmarks=shipped)
    assert ent is not None and ent.position == "below median"
    assert segment_context(1.0, "Public sector", benchmarks=shipped) is None


def test_segment_benchmarks_are_the_users_segment_names(tmp_path: Path) -> None:
    # Another company's segments: benchmarks come from its rules file, not from code.
    text = DEFAULT_RULES.read_text().replace(
        "    SMB: {median: 0.98, top_quartile: 1.05, best: 1.15}\n",
        "    Self-serve: {median: 0.9, top_quartile: 1.0, best: 1.1}\n",
    )
    custom = tmp_path / "rules.yaml"
    custom.write_text(text)
    benchmarks = load_rules_config(custom).revenue.benchmarks()
    ctx = segment_context(1.05, "self serve", benchmarks=benchmarks)
    assert ctx is not None and ctx.position == "top quartile"
    assert segment_context(1.05, "SMB", benchmarks=benchmarks) is None
