"""Tests that kill the mutants a mutation run left alive (issue 13, part 3).

A small AST mutation run (comparisons flipped, numeric constants c -> c+1 / 0, + <-> -,
`return x` -> `return None`) over the code that produces served numbers, thresholds and
boundaries (models/rules/renewals.py, models/rules/plays.py, models/scoring/calibration.py and
the probability/source/renewal functions of serving/scoring.py) left these alive. Every
expectation here is worked out by hand from the documented rule, not by calling the same code
path: hand-sized inputs whose answer is known (isotonic blocks, Jeffreys' half event, the
calibrator's clip at 1e-6, the flat Platt slope 1e-3, the plays' probability gates at exactly
0.0).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from rules_factories import AS_OF, default_config, fitted_normaliser, signal_row, snapshots

from models.rules.plays import RuleAssessment, health_history, recommend_play
from models.rules.renewals import renewal_status
from models.rules.signals import FiredRule
from models.scoring.calibration import Calibrator, ScoreToProbability

CONFIG = default_config()
PROACTIVE = "proactive expansion conversation"
EPS = 1e-6  # documented: calibrated probabilities are clipped to [1e-6, 1 - 1e-6]


def _rule(name: str, kind: str) -> FiredRule:
    return FiredRule(name=name, kind=kind, text=name, evidence={})  # type: ignore[arg-type]


# --- ScoreToProbability: the rule-score fallback map served when no model answers ---------


def test_score_to_probability_fit_predicts_the_hand_computed_map() -> None:
    # Decreasing: a high health score means little risk. Labels 1, 1, 0, 0 at 10..40 give the
    # step 1 -> 0 between 20 and 30; linear in between, clipped outside, NaN stays NaN.
    mapper = ScoreToProbability.fit([10.0, 20.0, 30.0, 40.0], [1, 1, 0, 0], decreasing=True)
    got = mapper.predict([5.0, 15.0, 25.0, 35.0, 99.0, np.nan])
    np.testing.assert_allclose(got[:5], [1.0, 1.0, 0.5, 0.0, 0.0], atol=1e-12)
    assert math.isnan(got[5])
    assert mapper.decreasing is True


def test_score_to_probability_stays_inside_zero_and_one_and_round_trips() -> None:
    # Increasing map on 0/1 labels: every fitted probability is a rate, inside [0, 1].
    mapper = ScoreToProbability.fit(
        [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0, 1, 0, 1, 1, 1], decreasing=False
    )
    assert all(0.0 <= p <= 1.0 for p in mapper.probabilities)
    # pooled (1, 0) at 1..2 is 0.5; the ends are 0 and 1
    np.testing.assert_allclose(mapper.predict([0.0, 1.5, 5.0]), [0.0, 0.5, 1.0], atol=1e-12)
    data = json.loads(json.dumps(mapper.to_dict()))
    assert data["kind"] == "score_to_probability"
    again = ScoreToProbability.from_dict(data)
    assert again == mapper
    np.testing.assert_array_equal(again.predict([0.5, 2.5]), mapper.predict([0.5, 2.5]))


def test_score_to_probability_from_dict_checks_shape_and_monotonicity() -> None:
    good = {"thresholds": [0.0, 50.0, 100.0], "probabilities": [0.9, 0.4, 0.1], "decreasing": True}
    mapper = ScoreToProbability.from_dict(good)
    assert mapper.predict([50.0])[0] == pytest.approx(0.4)
    # increasing probabilities on a decreasing map, and the reverse, are rejected
    with pytest.raises(ValueError, match="monotone"):
        ScoreToProbability.from_dict({**good, "probabilities": [0.1, 0.4, 0.9]})
    with pytest.raises(ValueError, match="monotone"):
        ScoreToProbability.from_dict({**good, "decreasing": False})
    ScoreToProbability.from_dict({**good, "probabilities": [0.1, 0.4, 0.9], "decreasing": False})
    with pytest.raises(ValueError, match="monotone"):
        ScoreToProbability.from_dict({**good, "probabilities": [0.9, 0.4]})
    # closely spaced thresholds and flat stretches are monotone maps too
    close = {"thresholds": [0.0, 0.25, 0.5], "probabilities": [0.9, 0.4, 0.4], "decreasing": True}
    assert ScoreToProbability.from_dict(close).predict([0.125])[0] == pytest.approx(0.65)
    with pytest.raises(ValueError, match="monotone"):
        ScoreToProbability.from_dict({**close, "thresholds": [0.5, 0.25, 0.0]})
    with pytest.raises(ValueError, match="1-d"):
        ScoreToProbability.fit([[1.0, 2.0]], [[0, 1]], decreasing=True)


# --- Calibrator: raw booster score -> served probability ---------------------------------


def test_sigmoid_calibrator_clips_exactly_at_eps() -> None:
    calib = Calibrator("sigmoid", {"coef": [1.0], "intercept": [0.0]})
    p = calib.predict(np.array([-100.0, 0.0, 100.0]))
    assert p[0] == EPS
    assert p[1] == 0.5
    assert p[2] == 1.0 - EPS


def test_isotonic_knots_are_block_centres_with_jeffreys_rates() -> None:
    # Labels 0, 0, 1, 1 at raw 0..3: two pooled blocks of 2, centres 0.5 and 2.5; a block
    # without a positive gets the half event 0.5 / (2 + 1) = 1/6, one without a negative 5/6.
    calib = Calibrator.fit(
        np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1]), method="isotonic"
    )
    np.testing.assert_allclose(calib.params["x"], [0.5, 2.5], atol=1e-12)
    np.testing.assert_allclose(calib.params["y"], [1 / 6, 5 / 6], atol=1e-12)
    np.testing.assert_allclose(calib.predict(np.array([-9.0, 1.5, 9.0])), [1 / 6, 0.5, 5 / 6])


def test_flat_sigmoid_keeps_order_with_a_tiny_slope_at_the_base_rate() -> None:
    # Labels falling with the raw score: the fitted slope is negative, so the documented
    # fallback is slope 1e-3 through the base rate at the mean raw score.
    raw = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    labels = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    calib = Calibrator.fit(raw, labels, method="sigmoid")
    assert calib.params["coef"] == [1e-3]
    base = labels.mean()
    expected = 1.0 / (1.0 + np.exp(-(np.log(base / (1 - base)) + 1e-3 * (raw - raw.mean()))))
    np.testing.assert_allclose(calib.predict(raw), expected, rtol=1e-12)
    assert (np.diff(calib.predict(raw)) > 0).all()


def test_a_positive_slope_below_one_is_kept() -> None:
    # True probability sigmoid(raw / 3): the fitted slope is about 1/3 and must be served as
    # fitted, not replaced by the flat fallback (which would put every account near 50%).
    rng = np.random.default_rng(7)
    raw = rng.normal(0.0, 6.0, 20000)
    labels = (rng.random(raw.size) < 1 / (1 + np.exp(-raw / 3.0))).astype(float)
    calib = Calibrator.fit(raw, labels, method="sigmoid")
    assert calib.params["coef"][0] == pytest.approx(1 / 3, rel=0.1)
    p = calib.predict(np.array([-15.0, 15.0]))
    assert p[0] < 0.02 and p[1] > 0.98


# --- plays: probability gates at exactly 0.0, triggers vs risks, health history ----------


def _thriving(**kwargs: object) -> str | None:
    play = recommend_play(
        health_score=90.0,
        health_band="Thriving",
        health_change=0.0,
        risks=[],
        **kwargs,  # type: ignore[arg-type]
        config=CONFIG,
    )
    return play.expansion_play


def test_churn_probability_of_exactly_zero_does_not_close_the_expansion_gate() -> None:
    trigger = [_rule("teammates_invited", "expansion")]
    assert _thriving(triggers=trigger, churn_probability=0.0, expansion_probability=None) == (
        PROACTIVE
    )


def test_expansion_probability_of_exactly_zero_is_not_a_likely_expansion() -> None:
    assert _thriving(triggers=[], churn_probability=None, expansion_probability=0.0) is None
    assert _thriving(triggers=[], churn_probability=None, expansion_probability=0.3) == PROACTIVE


def test_rule_assessment_splits_risks_from_expansion_triggers() -> None:
    risk, trigger = _rule("renewal_at_risk", "risk"), _rule("teammates_invited", "expansion")
    assessment = RuleAssessment(health={}, pqa={}, fired=[[risk, trigger], [trigger]])
    assert assessment.risks(0) == [risk]
    assert assessment.triggers(0) == [trigger]
    assert assessment.risks(1) == []
    assert assessment.triggers(1) == [trigger]


def test_health_history_scores_the_earlier_rows() -> None:
    earlier = AS_OF - pd.Timedelta(days=30)
    previous = snapshots(
        [signal_row(CONFIG, "good"), signal_row(CONFIG, "bad")], as_of=earlier
    ).set_index(pd.Index([7, 9]))
    normaliser = fitted_normaliser(CONFIG)
    history = health_history(previous, config=CONFIG, normaliser=normaliser)
    assert history is not None
    assert list(history["account_id"]) == ["a0", "a1"]
    assert (pd.to_datetime(history["as_of"]) == earlier).all()
    good, bad = history["health_score"]
    # every signal at its good anchor scores near 100, at its bad anchor near 0
    assert good > 90.0 and bad < 10.0
    assert health_history(None, config=CONFIG, normaliser=normaliser) is None
    assert health_history(previous.iloc[:0], config=CONFIG, normaliser=normaliser) is None


# --- renewals: rows without a renewal date column ------------------------------------------


def test_rows_without_renewal_at_are_month_to_month() -> None:
    rows = pd.DataFrame({"account_id": ["a0", "a1"], "as_of": [AS_OF, AS_OF]})
    status = renewal_status(
        rows, health_band=["At risk", "Healthy"], churn_probability=[None, 0.9], config=CONFIG
    )
    assert status["month_to_month"].tolist() == [True, True]
    assert np.isnan(status["days_left"]).all()
    assert np.isnan(status["alert_days"]).all()
    assert status["high_risk"].tolist() == [True, True]
    assert status["unowned"].tolist() == [True, True]


def test_a_constant_raw_score_gets_the_flat_slope() -> None:
    # A model without splits scores every account the same: the fitted slope is exactly 0,
    # which is "flat" (coef <= 0), so the documented slope 1e-3 keeps the order at the base rate.
    labels = np.array([0, 1, 0, 1, 1, 0, 0, 0])
    calib = Calibrator.fit(np.zeros(8), labels, method="sigmoid")
    assert calib.params["coef"] == [1e-3]
    assert calib.predict(np.array([0.0]))[0] == pytest.approx(labels.mean(), rel=1e-9)
    assert calib.predict(np.array([1.0]))[0] > calib.predict(np.array([0.0]))[0]


@pytest.mark.parametrize("kind", ["none", "series", "list"])
def test_renewal_high_risk_with_no_series_or_list_probabilities(kind: str) -> None:
    rows = pd.DataFrame(
        {
            "account_id": ["a0", "a1", "a2"],
            "as_of": [AS_OF] * 3,
            "renewal_at": [AS_OF + pd.Timedelta(days=d) for d in (10, 10, 10)],
        },
        index=[4, 5, 6],
    )
    values = [0.9, 0.3, None]  # 0.3 is at the threshold: not strictly above, not high risk
    churn = {
        "none": None,
        "series": pd.Series(values, index=rows.index, dtype="Float64"),
        "list": values,
    }[kind]
    status = renewal_status(
        rows, health_band=["Healthy", "Healthy", "Critical"], churn_probability=churn, config=CONFIG
    )
    expected = [False, False, True] if kind == "none" else [True, False, True]
    assert status["high_risk"].tolist() == expected
    assert status["days_left"].tolist() == [10.0, 10.0, 10.0]
    tiers = [30.0 if high else None for high in expected]
    assert [None if np.isnan(t) else t for t in status["alert_days"]] == tiers
