"""Amount model: change events from subscriptions, shrinkage, truncation, serialisation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import truncnorm

from models.revenue.amounts import (
    DEFAULT_PRIOR,
    AmountModel,
    arr_change_events,
    fit_amount_model,
    truncated_normal_params,
)

T = pd.Timestamp


def make_subscriptions(rows: list[tuple[str, str, str | None, float, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "start_at", "end_at", "arr", "plan"])
    return frame.assign(
        start_at=pd.to_datetime(frame["start_at"]), end_at=pd.to_datetime(frame["end_at"])
    )


def make_events(spec: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    """Events frame from {(kind, segment, plan): [log ratios]}."""
    rows = [
        {"kind": kind, "segment": seg, "plan": plan, "log_ratio": value}
        for (kind, seg, plan), values in spec.items()
        for value in values
    ]
    return pd.DataFrame(rows)


def test_change_events_compare_arr_at_quarter_bounds() -> None:
    subs = make_subscriptions(
        [
            ("up", "2024-01-01", "2024-02-10", 100, "Starter"),
            ("up", "2024-02-10", None, 150, "Pro"),
            # renewed lower after a 10-day gap: a contraction, not churn
            ("down", "2023-10-01", "2024-05-01", 200, "Pro"),
            ("down", "2024-05-11", None, 100, "Starter"),
            ("gone", "2023-10-01", "2024-02-01", 300, "Pro"),
            ("flat", "2023-10-01", None, 50, "Starter"),
        ]
    )
    accounts = pd.DataFrame(
        {"account_id": ["up", "down", "gone", "flat"], "segment": ["SMB", "Ent", "SMB", "SMB"]}
    )
    events = arr_change_events(subs, accounts, data_end=T("2024-07-01"), start=T("2024-01-01"))
    assert list(events["account_id"]) == ["up", "down"]
    up, down = events.iloc[0], events.iloc[1]
    assert (up["period_start"], up["arr_before"], up["arr_after"]) == (T("2024-01-01"), 100, 150)
    assert up["kind"] == "expansion" and up["log_ratio"] == pytest.approx(np.log(1.5))
    assert up["plan"] == "Starter" and up["segment"] == "SMB"
    assert down["kind"] == "contraction" and down["period_start"] == T("2024-04-01")
    assert down["log_ratio"] == pytest.approx(np.log(0.5)) and down["segment"] == "Ent"


def test_change_events_without_segment_column_use_unknown() -> None:
    subs = make_subscriptions(
        [("a", "2024-01-01", "2024-02-01", 100, "S"), ("a", "2024-02-01", None, 120, "S")]
    )
    events = arr_change_events(subs, pd.DataFrame({"account_id": ["a"]}), data_end=T("2024-04-01"))
    assert list(events["segment"]) == ["Unknown"]


@pytest.mark.parametrize(("mean", "sd"), [(0.25, 0.15), (0.1, 0.08), (0.3, 0.02)])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_truncated_parameters_reproduce_the_observed_moments(
    mean: float, sd: float, sign: float
) -> None:
    mu, sigma = truncated_normal_params(sign * mean, sd, sign=sign)
    a, b = ((0 - mu) / sigma, np.inf) if sign > 0 else (-np.inf, (0 - mu) / sigma)
    dist = truncnorm(a, b, loc=mu, scale=sigma)
    assert dist.mean() == pytest.approx(sign * mean, rel=1e-6)
    assert dist.std() == pytest.approx(sd, rel=1e-6)


def test_truncated_parameters_reject_the_wrong_sign() -> None:
    with pytest.raises(ValueError, match="wrong sign"):
        truncated_normal_params(-0.1, 0.1, sign=1.0)


def rich_history() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return make_events(
        {
            ("expansion", "SMB", "Starter"): list(rng.normal(0.5, 0.05, 40).clip(0.01)),
            ("expansion", "SMB", "Pro"): [0.3, 0.35],  # below min_count: falls back to SMB
            ("expansion", "Enterprise", "Pro"): list(rng.normal(0.1, 0.03, 40).clip(0.01)),
            ("expansion", "Mid", "Pro"): [0.9, 0.95, 1.0, 1.05, 1.1],  # few events: shrunk
            ("contraction", "SMB", "Starter"): list(-rng.uniform(0.1, 0.5, 30)),
        }
    )


def test_groups_shrink_toward_parent_and_small_groups_fall_back() -> None:
    model = fit_amount_model(rich_history(), min_count=5)
    exp = model.expansion
    assert set(exp.by_segment) == {"SMB", "Enterprise", "Mid"}
    assert ("SMB", "Pro") not in exp.by_segment_plan
    mid = exp.by_segment["Mid"]
    assert exp.pooled.mean < mid.mean < 1.0  # pulled from its raw mean 1.0 toward the pool
    smb_starter = exp.by_segment_plan[("SMB", "Starter")]
    assert smb_starter.mean == pytest.approx(0.5, abs=0.03)  # plenty of data: little pull
    frame = pd.DataFrame(
        {
            "segment": ["SMB", "SMB", "Enterprise", "Nowhere", None],
            "plan": ["Starter", "Pro", "Pro", "Pro", "Pro"],
        }
    )
    params = model.predict_params(frame)
    assert params["expand_mu"].iloc[0] == exp.by_segment_plan[("SMB", "Starter")].mu
    assert params["expand_mu"].iloc[1] == exp.by_segment["SMB"].mu
    assert params["expand_mu"].iloc[2] < params["expand_mu"].iloc[0]
    assert params["expand_mu"].iloc[3] == params["expand_mu"].iloc[4] == exp.pooled.mu
    assert list(params.index) == list(frame.index)


def test_no_events_of_a_kind_falls_back_to_the_prior() -> None:
    events = make_events({("expansion", "SMB", "S"): [0.2, 0.3, 0.25, 0.22, 0.28]})
    model = fit_amount_model(events)
    prior_mean, prior_sd = DEFAULT_PRIOR["contraction"]
    assert model.contraction.pooled.n == 0
    assert model.contraction.pooled.mean == pytest.approx(prior_mean)
    assert model.contraction.pooled.sd == pytest.approx(prior_sd)
    params = model.predict_params(pd.DataFrame(index=[10, 11]))
    assert (params["contract_mu"] < 0).all() and (params["expand_mu"] > 0).all()


def test_predicted_parameters_are_accepted_by_the_forecast() -> None:
    from models.revenue.forecast import simulate_outcomes

    model = fit_amount_model(rich_history())
    frame = pd.DataFrame({"segment": ["SMB", "Enterprise", "Mid"], "plan": ["Starter"] * 3})
    params = model.predict_params(frame)
    out = simulate_outcomes(
        arr=np.array([100.0, 200.0, 300.0]),
        p_churn=0.0,
        p_expand=0.5,
        p_contract=0.5,
        **{c: params[c].to_numpy() for c in params.columns},
        draws=100,
        seed=0,
    )
    assert (out.summary["mean"].notna()).all()


def test_json_round_trip_gives_identical_predictions() -> None:
    model = fit_amount_model(rich_history())
    restored = AmountModel.from_dict(json.loads(json.dumps(model.to_dict())))
    frame = pd.DataFrame({"segment": ["SMB", "Mid", "X"], "plan": ["Starter", "Pro", "Pro"]})
    pd.testing.assert_frame_equal(model.predict_params(frame), restored.predict_params(frame))
    with pytest.raises(ValueError, match="unknown"):
        AmountModel.from_dict({**model.to_dict(), "extra": 1})


def test_bad_events_are_named() -> None:
    events = rich_history()
    with pytest.raises(ValueError, match="plan"):
        fit_amount_model(events.drop(columns="plan"))
    with pytest.raises(ValueError, match="kind"):
        fit_amount_model(events.assign(kind="upsell"))
    flipped = events.assign(log_ratio=-events["log_ratio"])
    with pytest.raises(ValueError, match="sign"):
        fit_amount_model(flipped)
