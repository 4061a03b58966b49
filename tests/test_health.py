"""Health score: bands, normalisation, missing-weight redistribution, segments, alerts."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rules_factories import (
    config_with,
    default_config,
    fitted_normaliser,
    population,
    random_snapshots,
    raw_config,
    signal_row,
    snapshots,
)

from features.registry import BY_NAME
from models.rules.config import RulesConfig
from models.rules.health import HealthNormaliser, band_of, score_health

CONFIG = default_config()
NORMALISER = fitted_normaliser(CONFIG)


def _score(rows: list[dict], config: RulesConfig = CONFIG, **kw) -> pd.DataFrame:
    return score_health(snapshots(rows), config=config, normaliser=NORMALISER, **kw)


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (100.0, "Thriving"),
        (85.0, "Thriving"),
        (84.5, "Thriving"),
        (84.49, "Healthy"),
        (70.0, "Healthy"),
        (69.5, "Healthy"),
        (69.4, "At risk"),
        (50.0, "At risk"),
        (49.4, "Critical"),
        (25.0, "Critical"),
        (24.5, "Critical"),
        (24.4, "Churning"),
        (0.0, "Churning"),
    ],
)
def test_band_edges_apply_to_the_rounded_score(score: float, band: str) -> None:
    assert band_of(np.array([score]), CONFIG.health.bands).iloc[0] == band


def test_unknown_score_has_no_band() -> None:
    assert band_of(np.array([np.nan]), CONFIG.health.bands).isna().all()


def test_all_good_and_all_bad_signals_span_the_scale() -> None:
    out = _score([signal_row(CONFIG, "good"), signal_row(CONFIG, "bad")])
    assert out["health_score"].iloc[0] > 97
    assert out["health_score"].iloc[1] < 3
    assert list(out["health_band"]) == ["Thriving", "Churning"]


def _two_signal_config() -> RulesConfig:
    cats = {
        "a": {
            "weight": 0.6,
            "signals": {
                "core_breadth_30d": {
                    "weight": 0.75,
                    "norm": {"kind": "absolute", "bad": 0, "good": 1},
                },
                "seat_utilisation": {
                    "weight": 0.25,
                    "norm": {"kind": "absolute", "bad": 0, "good": 1},
                },
            },
        },
        "b": {
            "weight": 0.4,
            "signals": {
                "has_owner": {"weight": 1.0, "norm": {"kind": "absolute", "bad": 0, "good": 1}}
            },
        },
    }
    raw = raw_config()
    raw["health"].update(categories=cats, segments={})
    raw["plays"]["expansion"]["by_band"] = {b["name"]: None for b in raw["health"]["bands"]}
    return RulesConfig.model_validate(raw)


def test_weighted_sum_of_normalised_signals() -> None:
    out = _score(
        [{"core_breadth_30d": 0.4, "seat_utilisation": 0.8, "has_owner": 1.0}], _two_signal_config()
    )
    expected = 100 * (0.6 * (0.75 * 0.4 + 0.25 * 0.8) + 0.4 * 1.0)
    assert out["health_score"].iloc[0] == pytest.approx(expected)
    assert out["health_a"].iloc[0] == pytest.approx(100 * (0.75 * 0.4 + 0.25 * 0.8))


def test_missing_signal_weight_is_redistributed_within_its_category() -> None:
    config = _two_signal_config()
    nan_row = {"core_breadth_30d": 0.4, "seat_utilisation": np.nan, "has_owner": 0.0}
    absent = _score([{"core_breadth_30d": 0.4, "has_owner": 0.0}], config)
    out = _score([nan_row], config)
    assert out["health_score"].iloc[0] == pytest.approx(100 * 0.6 * 0.4)
    assert absent["health_score"].iloc[0] == pytest.approx(out["health_score"].iloc[0])
    assert out["health_missing"].iloc[0] == ["seat_utilisation"]


def test_fully_missing_category_is_redistributed_across_categories() -> None:
    out = _score([{"core_breadth_30d": 0.4, "seat_utilisation": 0.8}], _two_signal_config())
    assert out["health_score"].iloc[0] == pytest.approx(100 * (0.75 * 0.4 + 0.25 * 0.8))
    assert np.isnan(out["health_b"].iloc[0])
    assert out["health_missing"].iloc[0] == ["has_owner"]


def test_row_without_any_signal_has_no_score() -> None:
    out = _score([{"arr": 10.0}])
    assert np.isnan(out["health_score"].iloc[0])
    assert pd.isna(out["health_band"].iloc[0])
    assert len(out["health_missing"].iloc[0]) == sum(
        len(c.signals) for c in CONFIG.health.categories.values()
    )


def test_detractors_are_the_largest_weighted_shortfalls() -> None:
    row = signal_row(CONFIG, "good") | {
        "core_breadth_30d": 0.0,  # adoption 0.35 * 0.30 = 0.105 shortfall
        "seat_utilisation": 0.45,  # 0.35 * 0.30 * 0.5 = 0.0525
        "has_owner": 0.0,  # 0.20 * 0.20 = 0.04
        "nps_change": -1.0,  # 0.20 * 0.15 * 0.5 = 0.015
    }
    out = _score([row | {"segment": "unknown-seg"}])
    assert out["health_detractors"].iloc[0] == ["core_breadth_30d", "seat_utilisation", "has_owner"]


def test_no_detractors_when_every_signal_is_at_its_best() -> None:
    row = {
        n: v
        for n, v in signal_row(CONFIG, "good").items()
        if n in {"core_breadth_30d", "has_owner"}
    }
    assert _score([row])["health_detractors"].iloc[0] == []


def _relationship_weak_usage_strong() -> dict[str, float]:
    good = signal_row(CONFIG, "good")
    bad = signal_row(CONFIG, "bad")
    relationship = [
        "champion_active_14d",
        "executive_active_30d",
        "active_stakeholders_90d",
        "has_owner",
        "champion_departed_90d",
    ]
    return good | {k: bad[k] for k in relationship}


def test_enterprise_weights_relationship_and_smb_weights_usage() -> None:
    row = _relationship_weak_usage_strong()
    out = _score([row | {"segment": s} for s in ("Enterprise", "Mid-Market", "SMB")])
    ent, mid, smb = out["health_score"]
    assert ent < mid < smb


@pytest.mark.parametrize(
    ("segment", "same_as"),
    [
        ("ENTERPRISE", "Enterprise"),
        ("ent", "Enterprise"),
        ("Mid Market", "Mid-Market"),
        ("MM", "Mid-Market"),
        ("mid_market", "Mid-Market"),
        ("small business", "SMB"),
        ("Galactic", "Mid-Market"),
        (None, "Mid-Market"),
    ],
)
def test_segment_matching_is_case_and_alias_insensitive(segment: str | None, same_as: str) -> None:
    row = _relationship_weak_usage_strong()
    out = _score([row | {"segment": segment}, row | {"segment": same_as}])
    assert out["health_score"].iloc[0] == pytest.approx(out["health_score"].iloc[1])


def test_percentile_signals_make_the_score_size_invariant() -> None:
    small = fitted_normaliser(CONFIG, scale=1.0)
    big = fitted_normaliser(CONFIG, scale=25.0)
    rows = population(30, seed=3)
    a = score_health(rows, config=CONFIG, normaliser=small)["health_score"]
    b = score_health(rows * 25.0, config=CONFIG, normaliser=big)["health_score"]
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy())


def test_percentile_is_mid_rank_of_ties_and_monotone() -> None:
    pop = pd.DataFrame({"integrations_connected": [0.0] * 60 + [1.0] * 20 + [5.0] * 20})
    norm = HealthNormaliser.fit(pop, config=CONFIG)
    ranks = norm.percentile(
        "integrations_connected", np.array([-1.0, 0.0, 1.0, 3.0, 5.0, 99.0, np.nan])
    )
    assert ranks[1] == pytest.approx(0.295, abs=0.01)
    assert np.all(np.diff(ranks[:-1]) >= 0)
    assert np.isnan(ranks[-1])


def test_normaliser_json_round_trip_scores_identically() -> None:
    restored = HealthNormaliser.from_dict(json.loads(json.dumps(NORMALISER.to_dict())))
    frame = random_snapshots(50, seed=4, config=CONFIG)
    a = score_health(frame, config=CONFIG, normaliser=NORMALISER)["health_score"]
    b = score_health(frame, config=CONFIG, normaliser=restored)["health_score"]
    pd.testing.assert_series_equal(a, b)
    assert restored.thresholds == NORMALISER.thresholds


def test_normaliser_from_bad_dict_names_the_problem() -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        HealthNormaliser.from_dict(
            {"anchors": {"x": {"values": [2, 1], "ranks": [0, 1]}}, "thresholds": {}}
        )
    with pytest.raises(ValueError, match="malformed"):
        HealthNormaliser.from_dict({"thresholds": {}})


def test_percentile_signal_without_anchors_counts_as_missing() -> None:
    out = score_health(
        snapshots([{"integrations_connected": 3.0}]), config=CONFIG, normaliser=HealthNormaliser()
    )
    assert "integrations_connected" in out["health_missing"].iloc[0]


def test_non_numeric_feature_is_an_error_naming_it() -> None:
    frame = snapshots([{"core_breadth_30d": "high"}])
    with pytest.raises(ValueError, match="core_breadth_30d"):
        score_health(frame, config=CONFIG, normaliser=NORMALISER)


def _history_frame(days: list[int], breadth: list[float]) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-01-01")
    return snapshots(
        [
            {
                "account_id": "x",
                "as_of": t0 + pd.Timedelta(days=d),
                "core_breadth_30d": b,
                "seat_utilisation": 1.0,
            }
            for d, b in zip(days, breadth, strict=True)
        ]
    )


@pytest.mark.parametrize(
    ("gap_days", "drop", "alert"),
    [(7, 15.0, True), (7, 14.9, False), (3, 20.0, True), (8, 30.0, False)],
)
def test_alert_on_a_drop_of_15_points_within_7_days(
    gap_days: int, drop: float, alert: bool
) -> None:
    config = _two_signal_config()
    # score = 60 * (0.75 b + 0.25) / 60 * 100 with has_owner missing -> 75 b + 25
    frame = _history_frame([0, gap_days], [0.9, 0.9 - drop / 75])
    out = score_health(frame, config=config, normaliser=NORMALISER)
    assert out["health_change"].iloc[1] == pytest.approx(-drop)
    assert bool(out["health_alert"].iloc[1]) is alert
    assert np.isnan(out["health_change"].iloc[0])


def test_alert_uses_the_peak_inside_the_window_and_previous_scores() -> None:
    config = _two_signal_config()
    current = _history_frame([7], [0.5])  # score 62.5
    previous = pd.DataFrame(
        {
            "account_id": ["x", "x", "other"],
            "as_of": pd.to_datetime(["2026-01-01", "2026-01-04", "2026-01-06"]),
            "health_score": [80.0, 70.0, 99.0],
        }
    )
    out = score_health(current, config=config, normaliser=NORMALISER, previous=previous)
    assert out["health_change"].iloc[0] == pytest.approx(62.5 - 70.0)
    assert bool(out["health_alert"].iloc[0])


def test_previous_without_score_column_is_an_error() -> None:
    with pytest.raises(ValueError, match="health_score"):
        _score(
            [{"core_breadth_30d": 0.5}],
            previous=pd.DataFrame({"account_id": ["a0"], "as_of": [pd.Timestamp("2026-01-01")]}),
        )


# Every registry feature with a healthy direction, used by the score or not.
MONOTONE_FEATURES = sorted(
    f.name for f in BY_NAME.values() if f.direction != 0 and f.kind != "category"
)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    feature=st.sampled_from(MONOTONE_FEATURES),
    step=st.floats(0.0, 50.0, allow_nan=False),
)
def test_improving_a_healthy_direction_signal_never_lowers_the_score(
    seed: int, feature: str, step: float
) -> None:
    frame = random_snapshots(5, seed=seed, config=CONFIG)
    if feature not in frame:
        frame[feature] = np.random.default_rng(seed).normal(0, 2, len(frame))
    better = frame.copy()
    better[feature] = frame[feature] + BY_NAME[feature].direction * step
    before = score_health(frame, config=CONFIG, normaliser=NORMALISER)["health_score"]
    after = score_health(better, config=CONFIG, normaliser=NORMALISER)["health_score"]
    ok = before.notna()
    assert (after[ok] >= before[ok] - 1e-9).all()


def test_health_signals_cover_the_monotone_check() -> None:
    signals = {n for c in CONFIG.health.categories.values() for n in c.signals}
    assert signals - {"days_to_renewal"} <= set(MONOTONE_FEATURES)


def test_empty_frame_scores_to_an_empty_frame() -> None:
    frame = random_snapshots(3, seed=0, config=CONFIG).iloc[:0]
    out = score_health(frame, config=CONFIG, normaliser=NORMALISER)
    assert out.empty and "health_score" in out.columns


def test_weights_config_changes_the_score() -> None:
    cats = raw_config()["health"]["categories"]
    cats["adoption"]["weight"] = 0.0
    row = signal_row(CONFIG, "good") | {"core_breadth_30d": 0.0}
    with_adoption = _score([row])["health_score"].iloc[0]
    without = _score([row], config_with(categories=cats))["health_score"].iloc[0]
    assert without > with_adoption


# Calibrated fallback: health score -> churn probability (decreasing), PQA -> expansion.


def _labelled_scores(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    scores = rng.uniform(0, 100, n)
    labels = (rng.random(n) < 1 - scores / 100).astype(float)
    return scores, labels


def test_score_to_probability_is_monotone_decreasing_for_health() -> None:
    from models.scoring.calibration import ScoreToProbability

    scores, labels = _labelled_scores(1)
    mapping = ScoreToProbability.fit(scores, labels, decreasing=True)
    grid = mapping.predict(np.linspace(-50, 150, 401))
    assert np.all(np.diff(grid) <= 1e-12)
    assert mapping.predict([5.0])[0] > mapping.predict([95.0])[0]
    assert np.all((grid >= 0) & (grid <= 1))


def test_score_to_probability_increasing_clips_outside_the_fitted_range() -> None:
    from models.scoring.calibration import ScoreToProbability

    scores, labels = _labelled_scores(2)
    mapping = ScoreToProbability.fit(100 - scores, labels, decreasing=False)
    low, high = mapping.thresholds[0], mapping.thresholds[-1]
    assert mapping.predict([low - 1000])[0] == mapping.predict([low])[0]
    assert mapping.predict([high + 1000])[0] == mapping.predict([high])[0]
    assert np.all(np.diff(mapping.predict(np.linspace(0, 100, 101))) >= -1e-12)
    assert np.isnan(mapping.predict([np.nan])[0])


def test_score_to_probability_json_round_trip() -> None:
    from models.scoring.calibration import ScoreToProbability

    scores, labels = _labelled_scores(3)
    mapping = ScoreToProbability.fit(scores, labels, decreasing=True)
    restored = ScoreToProbability.from_dict(json.loads(json.dumps(mapping.to_dict())))
    assert restored == mapping
    np.testing.assert_array_equal(restored.predict(scores), mapping.predict(scores))


def test_score_to_probability_rejects_bad_input() -> None:
    from models.scoring.calibration import ScoreToProbability

    with pytest.raises(ValueError, match="0/1"):
        ScoreToProbability.fit([1.0, 2.0], [0.0, 2.0], decreasing=True)
    with pytest.raises(ValueError, match="equal length"):
        ScoreToProbability.fit([1.0, 2.0], [0.0], decreasing=True)
    with pytest.raises(ValueError, match="monotone"):
        ScoreToProbability.from_dict(
            {"thresholds": [0, 1], "probabilities": [0.1, 0.9], "decreasing": True}
        )
    with pytest.raises(ValueError, match="malformed"):
        ScoreToProbability.from_dict({"thresholds": [0, 1]})


def test_nrr_health_command_writes_scores_for_every_active_account(tmp_path) -> None:
    from rules_factories import write_tiny_company
    from typer.testing import CliRunner

    from nrr.cli import build_app

    as_of = write_tiny_company(tmp_path / "data")
    runner = CliRunner()
    args = ["health", "--data", str(tmp_path / "data"), "--as-of", str(as_of.date())]
    result = runner.invoke(build_app(), [*args, "--out", str(tmp_path / "h.parquet")])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(tmp_path / "h.parquet")
    assert sorted(frame["account_id"]) == ["x", "y", "z"]
    assert frame["health_score"].between(0, 100).all()
    assert {
        "health_band",
        "pqa_score",
        "risks",
        "triggers",
        "intervention",
        "expansion_play",
    } <= set(frame.columns)
    assert "no_owner" in frame.set_index("account_id").loc["y", "risks"]
    previous = frame.assign(
        health_score=frame["health_score"] + 20, as_of=as_of - pd.Timedelta(days=3)
    )
    previous.to_parquet(tmp_path / "prev.parquet")
    rerun = runner.invoke(
        build_app(),
        [*args, "--out", str(tmp_path / "h.csv"), "--previous", str(tmp_path / "prev.parquet")],
    )
    assert rerun.exit_code == 0, rerun.output
    csv = pd.read_csv(tmp_path / "h.csv")
    np.testing.assert_allclose(csv["health_change"], -20.0)
    assert csv["health_alert"].all()


def test_nrr_health_rejects_an_off_grid_date(tmp_path) -> None:
    from rules_factories import write_tiny_company
    from typer.testing import CliRunner

    from nrr.cli import build_app

    write_tiny_company(tmp_path / "data")
    args = [
        "health",
        "--data",
        str(tmp_path / "data"),
        "--as-of",
        "2026-03-04",
        "--out",
        str(tmp_path / "h.csv"),
    ]
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code != 0
    assert "month start or a Monday" in result.output


def test_missing_lists_match_the_nan_pattern_of_every_row() -> None:
    frame = random_snapshots(300, seed=8, config=CONFIG)
    out = score_health(frame, config=CONFIG, normaliser=NORMALISER)
    signals = [n for c in CONFIG.health.categories.values() for n in c.signals]
    expected = [[n for n in signals if pd.isna(row[n])] for _, row in frame.iterrows()]
    assert out["health_missing"].tolist() == expected
    assert any(expected) and not all(expected)
    detractors = out["health_detractors"].tolist()
    assert all(
        len(d) <= 3 and not set(d) & set(m) for d, m in zip(detractors, expected, strict=True)
    )
