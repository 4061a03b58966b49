"""The intervention comparison of an export, shared by `nrr interventions` and `nrr forecast`.

Both score the month starts the plays need with the workspace's champion models (the caller
passes its scorer and feature definition), then run
`models.outcomes.interventions.evaluate_interventions`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import typer
from rich.console import Console

if TYPE_CHECKING:
    from features.definition import FeatureDefinition
    from features.source import DataSource
    from models.outcomes.config import InterventionSpec
    from models.outcomes.interventions import InterventionReport

console = Console(stderr=True)
# snapshot rows -> (scored rows with churn_probability and health_band, where they came from)
Scorer = Callable[[pd.DataFrame], tuple[pd.DataFrame, str]]


def _scores(
    source: DataSource, dates: list[pd.Timestamp], *, score: Scorer, definition: FeatureDefinition
) -> tuple[pd.DataFrame, str, int]:
    """Churn probability and health band of every active account at each date."""
    from features.snapshots import build_snapshots
    from features.spine import build_spine

    source = definition.apply(source)
    spine = build_spine(source, start=min(dates), end=max(dates))
    spine = spine[pd.to_datetime(spine["as_of"]).isin(dates)].reset_index(drop=True)
    console.print(f"features and scores at {len(dates)} month starts ({len(spine):,} rows) ...")
    rows = build_snapshots(source=source, spine=spine, config=definition.snapshot)
    scored, model_source = score(rows)
    frame = pd.DataFrame(
        {
            "account_id": rows["account_id"].astype("string").to_numpy(),
            "as_of": pd.to_datetime(rows["as_of"]).astype("datetime64[ns]").to_numpy(),
            "churn_probability": scored["churn_probability"].to_numpy(dtype=float),
            "health_band": scored["health_band"].astype("string").to_numpy(),
        }
    )
    return frame, model_source, definition.snapshot.grace_days


def recorded_plays(source: DataSource, workdir: Path | None) -> pd.DataFrame:
    """The export's interventions table plus the plays recorded through the API."""
    from models.outcomes.store import read_plays
    from models.workspace import Workspace

    parts = [read_plays(Workspace.resolve(workdir).interventions_path)]
    if source.has("interventions"):
        parts.append(source.sql("SELECT * FROM interventions"))
    plays = pd.concat([p for p in parts if not p.empty] or parts[:1], ignore_index=True)
    plays["account_id"] = plays["account_id"].astype("string")
    plays["started_at"] = pd.to_datetime(plays["started_at"]).astype("datetime64[ns]")
    return plays.drop_duplicates(["account_id", "play", "started_at"]).reset_index(drop=True)


def intervention_report(
    source: DataSource,
    plays: pd.DataFrame,
    *,
    spec: InterventionSpec,
    score: Scorer,
    definition: FeatureDefinition,
) -> tuple[InterventionReport, str]:
    """Score the month starts the plays need and compare them with matched accounts."""
    from models.outcomes.interventions import evaluate_interventions, score_dates
    from models.revenue.nrr import arr_timeline

    dates = score_dates(plays, outcome_days=spec.outcome_days, data_end=source.data_end)
    if not dates:
        raise typer.BadParameter("every play starts after the end of the data", param_hint="--data")
    scores, model_source, grace_days = _scores(source, dates, score=score, definition=definition)
    subs = source.sql("SELECT * FROM subscriptions")
    subs = subs.assign(
        start_at=pd.to_datetime(subs["start_at"]).astype("datetime64[ns]"),
        end_at=pd.to_datetime(subs["end_at"]).astype("datetime64[ns]"),
    )
    timeline = arr_timeline(subs, data_end=source.data_end, grace_days=grace_days)
    report = evaluate_interventions(
        plays, scores=scores, timeline=timeline, spec=spec, data_end=source.data_end
    )
    return report, model_source
