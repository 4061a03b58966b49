"""The `nrr` command: wires each stage's subcommands together and holds nothing else."""

from __future__ import annotations

import typer

from features.cli import register as register_features


def build_app() -> typer.Typer:
    app = typer.Typer(
        name="nrr",
        help="NRR Engine: churn and expansion forecasts, health scores and NRR forecasts.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    register_features(app)
    for module in ("models.cli", "training.cli", "serving.cli"):
        _register_optional(app, module)
    return app


def _register_optional(app: typer.Typer, module: str) -> None:
    # Stages land one by one; a stage without a cli module simply has no commands yet.
    import importlib

    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return
    mod.register(app)


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
