"""The `nrr` command: wires each stage's subcommands together and holds nothing else."""

from __future__ import annotations

import typer

from features.cli import register as register_features
from models.cli import register as register_rules
from serving.cli import register as register_serving
from training.cli import register as register_training
from training.forecast_backtest import register as register_forecast_backtest


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="nrr",
        help="NRR Engine: churn and expansion forecasts, health scores and NRR forecasts.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    # Order here is the order of `nrr --help`: the quarterly workflow from data to API.
    register_features(app)
    register_rules(app)
    register_training(app)
    register_forecast_backtest(app)
    register_serving(app)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
