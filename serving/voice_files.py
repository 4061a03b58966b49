"""The voice-of-the-customer files of a report: themes.json and roadmap.json (what GET
/v1/themes and /v1/roadmap serve) with their CSV tables, for `nrr themes`, `nrr roadmap`
and `nrr forecast` alike."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
from rich.console import Console

from features.source import DataSource
from serving.registry_client import ModelBundle
from serving.voice_report import ROADMAP_FILE, THEMES_FILE

console = Console(stderr=True)


def theme_files(
    source: DataSource, *, step: Callable[[str], None] | None = None
) -> tuple[dict[str, Any], pd.DataFrame]:
    """themes.json content and the CSV table of a data source's themes."""
    from models.voice.build import theme_report

    report = theme_report(source, step=step or (lambda _: None))
    table = report.themes.assign(quotes=report.themes["quotes"].map(" | ".join))
    return report.to_dict(), table


def roadmap_files(
    snapshots: pd.DataFrame, bundle: ModelBundle
) -> tuple[dict[str, Any], pd.DataFrame]:
    """roadmap.json content and one CSV table (drivers, blockers and audit, by `part`)."""
    from models.voice.roadmap import build_roadmap

    roadmap = build_roadmap(snapshots, churn=bundle.churn, expansion=bundle.expansion)
    parts = {
        "churn_driver": roadmap.churn_drivers,
        "expansion_blocker": roadmap.expansion_blockers,
        "metric_audit": roadmap.audit,
    }
    frames = [f.assign(part=name) for name, f in parts.items() if f is not None and len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return roadmap.to_dict(), table


def voice_files(
    source: DataSource, *, snapshots: pd.DataFrame | None, bundle: ModelBundle
) -> dict[str, dict[str, Any]]:
    """What `nrr forecast` adds to its report: themes.json, and roadmap.json when it has
    snapshots with labels; a source without texts skips the themes and says so."""
    from models.voice.corpus import NoTexts
    from models.voice.themes import NotEnoughText

    files: dict[str, dict[str, Any]] = {}
    try:
        files[THEMES_FILE], _ = theme_files(source, step=lambda s: console.print(f"themes: {s}"))
    except (NoTexts, NotEnoughText) as exc:
        console.print(f"[yellow]no themes section: {exc}")
    if snapshots is not None:
        console.print("roadmap: ARR-weighted drivers and the metric audit ...")
        files[ROADMAP_FILE], _ = roadmap_files(snapshots, bundle)
    return files
