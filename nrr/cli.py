"""The `nrr` command: wires each stage's subcommands together and holds nothing else."""

from __future__ import annotations

import os
import sys

import typer

from models.clock import utc_now


def _root_app() -> typer.Typer:
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

    return app


def build_app() -> typer.Typer:
    # Imported here, not at the top: `nrr serve` builds its own small app (see main).
    from features.cli import register as register_features
    from models.cli import register as register_rules
    from models.outcomes.cli import register as register_outcomes
    from serving.cli import register as register_serving
    from serving.interventions_cli import register as register_interventions
    from serving.voice_cli import register as register_voice
    from training.cli import register as register_training
    from training.drift_cli import register as register_drift
    from training.forecast_backtest import register as register_forecast_backtest

    app = _root_app()
    # Order here is the order of `nrr --help`: the quarterly workflow from data to API.
    register_features(app)
    register_rules(app)
    register_training(app)
    register_forecast_backtest(app)
    register_drift(app)
    register_serving(app)
    register_outcomes(app)
    register_voice(app)
    register_interventions(app)
    return app


def _serve_app() -> typer.Typer:
    """Only `nrr serve`: a load balancer waits for /healthz, and importing every other stage
    (training, the report's charts) would cost it about a second at each start."""
    from serving.cli import serve

    app = _root_app()
    app.command("serve")(serve)
    return app


def main() -> None:
    # MLflow draws a progress bar per artifact download (several per model load); in a
    # terminal log they bury the product's own output. Users can still turn them back on.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app = _serve_app() if sys.argv[1:2] == ["serve"] else build_app()
    app()


if __name__ == "__main__":
    main()
