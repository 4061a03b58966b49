"""Each `nrr forecast` as an MLflow run: the figures leadership read, the report, its images.

The report a VP forwards is rendered once more by headless Chromium into `report.pdf` (the
whole report, paged for print) and `report_top.png` (the first screen: the headline and
the fan), so the run shows what people saw, not only the numbers behind it. The run lives
in the workspace's store, in its own experiment (`nrr-forecast`), beside the training runs
whose champions produced the probabilities; successive quarters' forecasts can then be
compared with what happened. Without Chromium the images are skipped and the command says
so; nothing is downloaded (the report is a local file with its charts inline).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from models.revenue.forecast import POOLED, backtest_horizons
from models.workspace import Workspace
from serving.report_html import horizon_coverage

EXPERIMENT = "nrr-forecast"
IMAGES = ("report.pdf", "report_top.png")
RENDER_TIMEOUT_SECONDS = 120
_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
)


def chromium() -> str | None:
    """The first headless-capable Chromium on PATH, or None."""
    for name in _BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def render_images(report_file: Path, out_dir: Path) -> tuple[list[Path], str | None]:
    """Write IMAGES of the report into out_dir; (files written, why not, or None).

    Rendered in a temporary folder and moved into place only when both succeeded: a failed
    render leaves no half image beside the report.
    """
    exe = chromium()
    if exe is None:
        return [], "no Chromium on PATH (apt-get install chromium): report images skipped"
    url = report_file.resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="nrr-render-") as tmp:
        pdf, png = Path(tmp) / IMAGES[0], Path(tmp) / IMAGES[1]
        profile = f"--user-data-dir={Path(tmp) / 'profile'}"
        commands = [
            [exe, *_FLAGS, profile, f"--print-to-pdf={pdf}", "--no-pdf-header-footer", url],
            [exe, *_FLAGS, profile, f"--screenshot={png}", "--window-size=1300,1800", url],
        ]
        for command in commands:
            try:
                subprocess.run(
                    command, capture_output=True, timeout=RENDER_TIMEOUT_SECONDS, check=False
                )
            except (OSError, subprocess.TimeoutExpired) as exc:
                return [], f"Chromium could not render the report ({exc}): images skipped"
        missing = [p.name for p in (pdf, png) if not p.is_file() or p.stat().st_size == 0]
        if missing:
            return [], f"Chromium wrote no {', '.join(missing)}: report images skipped"
        written = []
        for path in (pdf, png):
            target = out_dir / path.name
            shutil.move(str(path), target)
            written.append(target)
    return written, None


def forecast_figures(forecast: Any, backtest: pd.DataFrame | None) -> dict[str, float]:
    """Metrics of the run: next quarter's and each fan quarter's NRR P10/P50/P90 (pooled)
    and, with a backtest table, its pooled P10-P90 coverage per horizon."""
    figures = {f"next_quarter_nrr_{q}": forecast.value("nrr", q) for q in ("p10", "p50", "p90")}
    fan = forecast.fan[(forecast.fan["group"] == POOLED) & (forecast.fan["metric"] == "nrr")]
    for _, row in fan.iterrows():
        for q in ("p10", "p50", "p90"):
            figures[f"fan_nrr_{int(row['quarter'])}q_{q}"] = float(row[q])
    if backtest is not None and not backtest.empty:
        for horizon in sorted(set(backtest_horizons(backtest))):
            checked = horizon_coverage(backtest, horizon)
            if checked is not None:
                figures[f"backtest_coverage_{horizon}q"] = checked[0]
    return figures


def log_forecast_run(
    out_dir: Path, *, workspace: Workspace, figures: dict[str, float], tags: dict[str, str]
) -> str:
    """Log the report folder's files and `figures` as a run of EXPERIMENT; its run id."""
    import mlflow

    from models.workspace import setup_tracking

    setup_tracking(workspace.model_copy(update={"experiment_name": EXPERIMENT}))
    with mlflow.start_run(run_name=f"forecast {tags.get('quarter', '')}".strip()) as run:
        mlflow.set_tags(tags)
        mlflow.log_metrics(figures)
        mlflow.log_artifacts(str(out_dir), artifact_path="report")
        return str(run.info.run_id)
