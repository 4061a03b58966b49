"""The `nrr` command: wires each stage's subcommands together and holds nothing else."""

from __future__ import annotations

import os

import typer

from features.cli import register as register_features
from models.cli import register as register_rules
from models.clock import utc_now
from serving.cli import register as register_serving
from training.cli import register as register_training
from training.drift_cli import register as register_drift
from training.forecast_backtest import register as register_forecast_backtest


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="nrr",
        help="NRR Engine: churn and expansion forecasts, health scores and NRR forecasts.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )

    @app.callback()
    def _root(ctx: typer.Context) -> None:
        # The clock enters here, at the edge: stages below take "now" as an argument.
        ctx.obj = utc_now

    # Order here is the order of `nrr --help`: the quarterly workflow from data to API.
    register_features(app)
    register_rules(app)
    register_training(app)
    register_forecast_backtest(app)
    register_drift(app)
    register_serving(app)
    return app


def main() -> None:
    # MLflow draws a progress bar per artifact download (several per model load); in a
    # terminal log they bury the product's own output. Users can still turn them back on.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    build_app()()


if __name__ == "__main__":
    main()
