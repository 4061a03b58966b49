"""Every experiment file loads, and a wrong key or value is reported by its key path."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from models.outcomes.config import load_outcomes_config, load_targets
from models.rules.config import RulesConfig, RulesConfigError, load_rules_config
from training.config import ExperimentConfig, ExperimentConfigError, load_experiment

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))
RULES = REPO / "experiments" / "rules.yaml"
# Files of the folder that are not training experiments, each with the loader that reads it.
OTHER_LOADERS: dict[str, Callable[[Path], object]] = {
    "rules.yaml": load_rules_config,
    "outcomes.yaml": load_outcomes_config,
    "targets.yaml": load_targets,
}
TRAINING_FILES = [p for p in EXPERIMENTS if p.name not in OTHER_LOADERS]
Edit = Callable[[dict[str, Any]], None]


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


def _edited(tmp_path: Path, source: Path, edit: Edit) -> Path:
    data = yaml.safe_load(source.read_text())
    edit(data)
    out = tmp_path / source.name
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def test_the_experiments_folder_holds_training_and_rules_files() -> None:
    assert RULES in EXPERIMENTS and len(TRAINING_FILES) >= 2


@pytest.mark.parametrize("name", sorted(OTHER_LOADERS))
def test_every_other_config_file_loads_with_its_own_loader(name: str) -> None:
    path = REPO / "experiments" / name
    assert path in EXPERIMENTS
    assert OTHER_LOADERS[name](path) is not None


@pytest.mark.parametrize("path", TRAINING_FILES, ids=_ids(TRAINING_FILES))
def test_every_training_experiment_loads(path: Path) -> None:
    config = load_experiment(path)
    assert isinstance(config, ExperimentConfig)
    assert config.name == path.stem


def test_the_rules_file_loads() -> None:
    assert isinstance(load_rules_config(RULES), RulesConfig)


@pytest.mark.parametrize("path", EXPERIMENTS, ids=_ids(EXPERIMENTS))
def test_every_key_of_every_experiment_file_is_explained(path: Path) -> None:
    """Each top-level section has a comment on its line or right above it."""
    lines = path.read_text().splitlines()
    assert lines[0].startswith("#"), f"{path.name}: start with a comment saying what it is for"
    for i, line in enumerate(lines):
        if line and not line.startswith((" ", "#", "-")) and ":" in line:
            above = lines[i - 1].strip() if i else ""
            assert "#" in line or above.startswith("#"), f"{path.name}: uncommented key {line!r}"


@pytest.mark.parametrize(
    ("edit", "path", "fragment"),
    [
        (
            lambda d: d["tuning"].update(trails=d["tuning"].pop("trials")),
            "tuning.trails",
            "'trials'",
        ),
        (lambda d: d.update(seeed=d.pop("seed")), "seeed", "'seed'"),
        (lambda d: d["booster"].update(max_round=80), "booster.max_round", "'max_rounds'"),
        (lambda d: d["snapshot"].update(horizon=90), "snapshot.horizon", "'horizon_days'"),
    ],
    ids=["tuning", "top-level", "booster", "snapshot"],
)
def test_a_misspelt_experiment_key_is_named_with_the_closest_valid_one(
    tmp_path: Path, edit: Edit, path: str, fragment: str
) -> None:
    bad = _edited(tmp_path, REPO / "experiments" / "fast.yaml", edit)
    with pytest.raises(ExperimentConfigError) as info:
        load_experiment(bad)
    message = str(info.value)
    assert f"{path}: unknown key (did you mean {fragment}?)" in message, message


@pytest.mark.parametrize(
    ("edit", "path", "shown"),
    [
        (lambda d: d["tuning"].update(trials=-1), "tuning.trials", "(got -1)"),
        (lambda d: d["tuning"].update(trials="many"), "tuning.trials", "(got 'many')"),
        (
            lambda d: d["booster"]["params"].update(num_leaves="lots"),
            "booster.params.num_leaves",
            "'lots'",
        ),
        (lambda d: d.update(targets=["churn", "upsell"]), "targets.1", "'upsell'"),
        (lambda d: d["evaluation"].update(review_budget=1.5), "evaluation.review_budget", "1.5"),
    ],
    ids=["negative", "text", "union-member", "list-item", "above-max"],
)
def test_a_wrong_experiment_value_is_named_by_its_key_path(
    tmp_path: Path, edit: Edit, path: str, shown: str
) -> None:
    bad = _edited(tmp_path, REPO / "experiments" / "fast.yaml", edit)
    with pytest.raises(ExperimentConfigError) as info:
        load_experiment(bad)
    message = str(info.value)
    assert f"{path}: " in message and shown in message, message
    # pydantic's internal union tags ('.int', '.float') never leak into the path
    assert ".int:" not in message and ".float:" not in message


def test_every_problem_of_an_experiment_file_is_reported_at_once(tmp_path: Path) -> None:
    def edit(d: dict[str, Any]) -> None:
        d["backtest"].update(folds=0, spaceing=3)

    with pytest.raises(ExperimentConfigError) as info:
        load_experiment(_edited(tmp_path, REPO / "experiments" / "fast.yaml", edit))
    message = str(info.value)
    assert "backtest.folds: " in message and "(got 0)" in message
    assert "backtest.spaceing: unknown key (did you mean 'spacing'?)" in message


def test_an_unrelated_unknown_key_lists_the_valid_keys(tmp_path: Path) -> None:
    bad = _edited(
        tmp_path, REPO / "experiments" / "fast.yaml", lambda d: d["promotion"].update(zzz=1)
    )
    with pytest.raises(ExperimentConfigError, match=r"promotion\.zzz: unknown key") as info:
        load_experiment(bad)
    valid = "valid keys: brier_tolerance, interval, interval_resamples, min_auc_delta"
    assert valid in str(info.value)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            lambda d: d["health"]["alert"].update(
                within_dayz=d["health"]["alert"].pop("within_days")
            ),
            "health.alert.within_dayz: unknown key (did you mean 'within_days'?)",
        ),
        (
            lambda d: d["health"]["categories"]["adoption"]["signals"]["core_breadth_30d"][
                "norm"
            ].update(godo=1.0),
            "health.categories.adoption.signals.core_breadth_30d.norm.godo: unknown key "
            "(did you mean 'good'?)",
        ),
        (
            lambda d: d["rules"][0]["conditions"][0].update(op="~"),
            "rules.0.conditions.0.op: ",
        ),
        (lambda d: d["renewals"].update(alert_days="soon"), "renewals.alert_days: "),
        (
            lambda d: d["plays"]["expansion"].update(churn_probability_gate=2),
            "plays.expansion.churn_probability_gate: ",
        ),
    ],
    ids=["misspelt", "misspelt-in-union", "wrong-op", "wrong-type", "out-of-range"],
)
def test_a_wrong_rules_key_or_value_is_named_by_its_key_path(
    tmp_path: Path, edit: Edit, expected: str
) -> None:
    with pytest.raises(RulesConfigError, match="invalid rules config") as info:
        load_rules_config(_edited(tmp_path, RULES, edit))
    message = str(info.value)
    assert expected in message, message
    assert "absolute.good" not in message and "errors.pydantic.dev" not in message


def test_rules_errors_stay_value_errors_for_existing_callers() -> None:
    assert issubclass(RulesConfigError, ValueError)
    assert issubclass(ExperimentConfigError, ValueError)
