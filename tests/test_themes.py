"""Themes in ticket texts and NPS comments (models/voice): recovered topics on simulated
companies (purity against the simulator's side table), the figures of the theme table
against an independent pandas reading of the tables, and the correlation's rates."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.load import load_source
from features.simulate import SimulationConfig, write_company
from features.simulate.texts import DEFAULT_TOPICS, Topic
from models.voice.build import theme_report
from models.voice.correlation import CorrelationSettings, theme_correlation
from models.voice.summary import WINDOW_DAYS, ThemeReport
from models.voice.themes import find_themes, overlap, purity, strip_templates

NOW = pd.Timestamp("2030-01-01")
# Another company, other words: a logistics product, six topics, none of the default ones.
LOGISTICS = (
    Topic(
        name="shipment tracking",
        kind="problem",
        terms=(
            "the tracking page",
            "shipment status",
            "delivery scans",
            "the tracking number",
            "parcel events",
            "the carrier feed",
        ),
    ),
    Topic(
        name="label printing",
        kind="problem",
        terms=(
            "the label printer",
            "shipping labels",
            "the thermal printer",
            "label templates",
            "barcode labels",
            "the print queue",
        ),
    ),
    Topic(
        name="driver app",
        kind="problem",
        terms=(
            "the driver app",
            "proof of delivery",
            "the route screen",
            "GPS positions",
            "offline mode",
            "the signature capture",
        ),
    ),
    Topic(
        name="more depots",
        kind="growth",
        terms=(
            "another depot",
            "more vehicles",
            "extra drivers",
            "the fleet add-on",
            "a second warehouse",
            "the multi-depot plan",
        ),
    ),
    Topic(
        name="customs paperwork",
        kind="question",
        terms=(
            "customs declarations",
            "commercial invoices",
            "HS codes",
            "export documents",
            "the customs broker",
            "duty estimates",
        ),
    ),
    Topic(
        name="route planning",
        kind="question",
        terms=(
            "route optimisation",
            "delivery windows",
            "stop sequencing",
            "the route planner",
            "time slots",
            "zone maps",
        ),
    ),
)


def _company(folder: Path, **kwargs: object) -> Path:
    write_company(folder, SimulationConfig(**kwargs))  # type: ignore[arg-type]
    return folder


@pytest.fixture(scope="module")
def saas(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _company(tmp_path_factory.mktemp("saas"), accounts=250, months=13, seed=3)


@pytest.fixture(scope="module")
def logistics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _company(
        tmp_path_factory.mktemp("logistics"), accounts=200, months=8, seed=21, topics=LOGISTICS
    )


@pytest.fixture(scope="module")
def saas_report(saas: Path) -> ThemeReport:
    return theme_report(load_source(saas, now=NOW), correlation=CorrelationSettings(draws=200))


def _texts_with_truth(folder: Path) -> pd.DataFrame:
    """Ticket texts and NPS comments read straight from the files, with their true topic."""
    tickets = pd.read_parquet(folder / "tickets.parquet")
    nps = pd.read_parquet(folder / "nps_responses.parquet").dropna(subset=["comment"])
    truth = pd.read_parquet(folder / "text_topics.parquet")
    texts = pd.concat(
        [
            tickets.rename(columns={"created_at": "at"}).assign(source="tickets"),
            nps.rename(columns={"responded_at": "at", "comment": "text"}).assign(
                source="nps_responses"
            ),
        ]
    )[["source", "account_id", "at", "text"]]
    merged = texts.merge(truth, on=["source", "account_id", "at"], how="left", validate="1:1")
    assert merged["topic"].notna().all()
    return merged.reset_index(drop=True)


@pytest.mark.parametrize(
    ("company", "topics"), [("saas", DEFAULT_TOPICS), ("logistics", LOGISTICS)]
)
def test_themes_recover_the_simulated_topics(
    company: str, topics: tuple[Topic, ...], request: pytest.FixtureRequest
) -> None:
    texts = _texts_with_truth(request.getfixturevalue(company))
    model = find_themes(texts["text"])
    score = purity(model.theme, texts["topic"].to_numpy())
    print(f"{company}: {model.k} themes for {len(topics)} topics, purity {score:.3f}")
    assert score >= 0.8
    # every topic is the majority of some theme (no topic swallowed by another)
    table = pd.crosstab(model.theme, texts["topic"])
    assert set(table.idxmax(axis=1)) == {t.name for t in topics}
    assert model.k == len(topics)


def test_purity_and_overlap_by_hand() -> None:
    theme = np.array([0, 0, 0, 1, 1, -1])
    truth = np.array(["a", "a", "b", "b", "b", "a"])
    assert purity(theme, truth) == pytest.approx(4 / 5)  # the -1 text is left out
    weights = np.array([[1.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    # texts of theme 0 carry (0 + 1/4) / 2 on theme 1; theme 1's text carries 0 on theme 0
    assert overlap(weights) == pytest.approx(0.125)


def test_template_sentences_are_left_out() -> None:
    texts = pd.Series(
        [f"Invoice {i} was wrong. Please advise." for i in range(30)] + ["Please advise.", ""]
    )
    kept = strip_templates(texts, 0.1)
    assert kept.iloc[0] == "Invoice 0 was wrong."
    assert kept.iloc[30] == "" and kept.iloc[31] == ""


def test_correlation_rates_match_a_hand_count() -> None:
    rows = pd.DataFrame(
        {
            "account_id": ["a", "a", "b", "c", "d", "e"],
            "churned": [True, False, True, False, False, False],
            "expanded": [False, True, False, False, True, False],
        }
    )
    said = np.array([[1], [0], [1], [1], [0], [0]], dtype=bool)
    out = theme_correlation(rows, said, CorrelationSettings(draws=200)).iloc[0]
    assert out["churn_mention_rate"] == pytest.approx(2 / 2)
    assert out["rest_churn_mention_rate"] == pytest.approx(1 / 4)
    assert out["churn_ratio"] == pytest.approx(4.0)
    assert out["expand_mention_rate"] == pytest.approx(0 / 2)
    assert out["churn_ratio_low"] <= out["churn_ratio"] <= out["churn_ratio_high"]


def test_no_labelled_month_gives_no_correlation_instead_of_an_error() -> None:
    rows = pd.DataFrame({"account_id": [], "churned": [], "expanded": []})
    out = theme_correlation(rows, np.zeros((0, 2), dtype=bool), CorrelationSettings())
    assert len(out) == 2 and out["churn_ratio"].isna().all() and (out["churn_rows"] == 0).all()


def test_theme_table_figures_match_the_raw_tables(saas: Path, saas_report: ThemeReport) -> None:
    report = saas_report
    texts = _texts_with_truth(saas)
    assert report.texts == len(texts)
    end = pd.Timestamp("2026-10-01")
    at = pd.to_datetime(texts["at"]).dt.tz_localize(None)
    recent = texts[(at >= end - pd.Timedelta(days=WINDOW_DAYS)) & (at < end)]
    subs = pd.read_parquet(saas / "subscriptions.parquet")
    for row in report.themes.itertuples():
        # the theme's topic: the majority topic of its quotes; a theme is its topic up to
        # the purity (>= 0.99 here), hence the tolerances
        quoted = texts[texts["text"].isin(row.quotes)]["topic"].mode().iloc[0]
        mine = recent[recent["topic"] == quoted]
        assert row.mentions == pytest.approx(len(mine), rel=0.1), row.name
        assert row.accounts == pytest.approx(mine["account_id"].nunique(), rel=0.1)
        # ARR affected: each mentioning account's ARR when it last wrote
        last = mine.sort_values("at").drop_duplicates("account_id", keep="last")
        arr = 0.0
        for acct, when in zip(last["account_id"], last["at"], strict=True):
            live = subs[(subs["account_id"] == acct) & (subs["start_at"] <= when)]
            live = live[live["end_at"].isna() | (live["end_at"] > when)]
            arr += float(live["arr"].max()) if len(live) else 0.0
        assert row.arr_affected == pytest.approx(arr, rel=0.15), row.name
    assert len(report.themes) == len(DEFAULT_TOPICS)


def test_problem_topics_come_out_churn_correlated(saas: Path, saas_report: ThemeReport) -> None:
    """The simulator draws problem topics with negative tone at low health (which drives
    churn) and growth topics under seat pressure (which drives upsells)."""
    themes = saas_report.themes
    assert (themes["churn_ratio"] > 0).all()
    texts = _texts_with_truth(saas)
    kinds = {t.name: t.kind for t in DEFAULT_TOPICS}
    kind_of = {
        row.theme: kinds[texts[texts["text"].isin(row.quotes)]["topic"].mode().iloc[0]]
        for row in themes.itertuples()
    }
    problem = themes[themes["theme"].map(kind_of) == "problem"]
    growth = themes[themes["theme"].map(kind_of) == "growth"]
    assert problem["churn_ratio"].mean() > 1.0 > growth["churn_ratio"].mean()
    assert growth["expand_ratio"].mean() > problem["expand_ratio"].mean()


def test_nrr_themes_writes_json_csv_and_a_page(saas: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from nrr.cli import build_app

    result = CliRunner().invoke(
        build_app(), ["themes", "--data", str(saas), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    content = json.loads((tmp_path / "themes.json").read_text())
    table = pd.read_csv(tmp_path / "themes.csv")
    assert len(content["themes"]) == len(table) == len(DEFAULT_TOPICS)
    assert table["mentions"].tolist() == [t["mentions"] for t in content["themes"]]
    page = (tmp_path / "themes.html").read_text()
    assert '<section id="themes">' in page and content["themes"][0]["name"] in page
