"""`nrr themes` and `nrr roadmap`: the voice of the customer and the roadmap input, each as
JSON (what GET /v1/themes and /v1/roadmap serve), CSV and an HTML page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import typer
from rich.console import Console

from features.load_cli import read_parquet_or_exit
from models.clock import utc_now
from serving.voice_files import roadmap_files, theme_files
from serving.voice_report import ROADMAP_FILE, THEMES_FILE, page, voice_sections

console = Console(stderr=True)
out = Console()
WORKDIR_HELP = "workspace holding mlflow.db (default ./mlops or NRR_WORKDIR)"


def check_out(out_dir: Path) -> None:
    """--out must be a folder or creatable as one; checked before any work, created later."""
    for folder in (out_dir, *out_dir.parents):
        if folder.exists():
            if not folder.is_dir():
                console.print(f"[red]error:[/red] --out {out_dir}: {folder} is not a folder")
                raise typer.Exit(1)
            return


def _write(out_dir: Path, name: str, content: dict[str, Any], table: pd.DataFrame) -> Path:
    """name.json, name.csv and name.html into out_dir (created; other files kept)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = name.removesuffix(".json")
    (out_dir / name).write_text(json.dumps(content, indent=1, default=str), encoding="utf-8")
    table.to_csv(out_dir / f"{stem}.csv", index=False)
    html_path = out_dir / f"{stem}.html"
    title = "Voice of the customer" if name == THEMES_FILE else "Roadmap input"
    html_path.write_text(page(title, voice_sections({name: content})), encoding="utf-8")
    return html_path


def themes(
    data: Path = typer.Option(..., "--data", help="folder (or DuckDB file) of the contract tables"),
    out_dir: Path = typer.Option(..., "--out", help="folder for themes.json, .csv and .html"),
) -> None:
    """Themes in ticket texts and NPS comments: mentions, ARR, trend, quotes, churn link."""
    from features.load_cli import load_or_exit
    from models.voice.corpus import NoTexts
    from models.voice.themes import NotEnoughText

    check_out(out_dir)
    source = load_or_exit(data, now=utc_now())
    try:
        content, table = theme_files(source, step=lambda s: console.print(f"{s} ..."))
    except (NoTexts, NotEnoughText) as exc:
        console.print(f"[red]error:[/red] --data {data}: {exc}")
        raise typer.Exit(1) from None
    path = _write(out_dir, THEMES_FILE, content, table)
    for t in content["themes"][:5]:
        console.print(
            f"{t['name']}: {t['mentions']} mentions, {t['accounts']} accounts, "
            f"${t['arr_affected']:,.0f} ARR, {t['trend']}; churn {t['churn_reading']}, "
            f"expansion {t['expand_reading']}"
        )
    out.print(str(path))


def roadmap(
    snapshots: Path = typer.Option(..., "--snapshots", help="Parquet from `nrr snapshots`"),
    out_dir: Path = typer.Option(..., "--out", help="folder for roadmap.json, .csv and .html"),
    workdir: Path | None = typer.Option(None, "--workdir", help=WORKDIR_HELP),
) -> None:
    """The book's ARR-weighted churn drivers and expansion blockers, and vanity metrics."""
    from serving.forecast_cli import _served_models

    check_out(out_dir)
    frame = read_parquet_or_exit(snapshots, "--snapshots")
    missing = [c for c in ("account_id", "as_of", "arr") if c not in frame.columns]
    if missing or frame.empty:
        what = f"lacks column(s) {missing}" if missing else "has no rows"
        console.print(f"[red]error:[/red] --snapshots {snapshots} {what}")
        raise typer.Exit(1)
    _, bundle = _served_models(workdir)
    if bundle.fallback_reason:
        console.print(f"[yellow]models not loaded ({bundle.fallback_reason}): no drivers")
    content, table = roadmap_files(frame, bundle)
    path = _write(out_dir, ROADMAP_FILE, content, table)
    for key, title in (("churn_drivers", "churn driver"), ("expansion_blockers", "blocker")):
        for row in [r for r in content[key] or [] if not r["contract_fact"]][:3]:
            console.print(
                f"{title}: {row['label']} ({100 * row['share']:.0f}% of ARR-weighted push)"
            )
    vanity = [r["metric"] for r in content["metric_audit"] or [] if r["vanity"]]
    console.print(f"vanity metrics ({len(vanity)}): {', '.join(vanity) or 'none'}")
    out.print(str(path))


def register(app: typer.Typer) -> None:
    """Add `nrr themes` and `nrr roadmap` to the root command."""
    app.command("themes")(themes)
    app.command("roadmap")(roadmap)
