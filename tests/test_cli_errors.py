"""Every `nrr` subcommand, given wrong input, says what is wrong in a line and exits non-zero.

The commands are enumerated from `build_app()`: a new command without a case here fails
`test_every_command_has_a_wrong_input_case`. Each case runs in an empty working folder
(no NRR_* / MLFLOW_* variables) and checks: a non-zero exit, no traceback, a short message
naming the problem (a validation report table is allowed for contract violations), and
nothing left behind in the working folder (no mlops/, mlflow.db, half-written outputs).

Known problems in code owned elsewhere are `xfail(strict=True)` with the cause: they flip
to a failure (and must be un-marked) once fixed.
"""

from __future__ import annotations

import fcntl
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from contract_frames import valid_frames, write_parquet
from rich.console import Console
from typer.testing import CliRunner

from experiments import FAST_EXPERIMENT
from features.simulate import SimulationConfig, write_company
from nrr.cli import build_app
from serving.settings import get_settings

NRR = Path(sys.executable).parent / "nrr"
END = "2026-10-01"
# A wide terminal: rich wraps at COLUMNS, and a wrapped message must still count as one line.
WIDE = "1000"
BOX = re.compile(r"[\u2500-\u257f]")
_ENV_PREFIXES = ("NRR_", "MLFLOW_")


@dataclass(frozen=True)
class Case:
    """One wrong input: `args` is a template over the fixture paths (see `paths`)."""

    id: str
    args: str
    expect: str  # regex the message must match (names the problem)
    report: bool = False  # a contract-violation report table is the expected answer
    xfail: str | None = None


CASES: tuple[Case, ...] = (
    # simulate
    Case("simulate-bad-end", "simulate --out sim --accounts 10 --end notadate", r"--end.*notadate"),
    Case("simulate-months-too-few", "simulate --out sim --months 2", r"--months"),
    Case("simulate-out-is-a-file", "simulate --out {blocker} --accounts 10", r"is a file"),
    Case("simulate-out-under-a-file", "simulate --out {blocker}/x --accounts 10", r"not a folder"),
    # validate
    Case("validate-missing-folder", "validate --data {missing}", r"no such file", report=True),
    Case("validate-empty-tables", "validate --data {empty}", r"table has no rows", report=True),
    Case(
        "validate-bad-extracted-at",
        "validate --data {short} --extracted-at notadate",
        r"--extracted-at.*notadate",
    ),
    Case("validate-unknown-engine", "validate --data {short} --engine polars", r"unknown engine"),
    Case(
        "validate-spark-missing-folder",
        "validate --engine spark --data {missing}",
        r"no such file or folder",
        report=True,
    ),
    # snapshots
    Case(
        "snapshots-missing-folder",
        "snapshots --data {missing} --out s.parquet",
        r"no such file",
        report=True,
    ),
    Case(
        "snapshots-empty-tables",
        "snapshots --data {empty} --out s.parquet",
        r"table has no rows",
        report=True,
    ),
    Case("snapshots-bad-start", "snapshots --data {short} --out s.parquet --start x", r"--start"),
    Case("snapshots-bad-freq", "snapshots --data {short} --out s.parquet --freq day", r"--freq"),
    Case(
        "snapshots-out-under-a-file",
        "snapshots --data {short} --out {blocker}/s.parquet",
        r"not a folder",
    ),
    Case(
        "snapshots-unknown-engine",
        "snapshots --data {short} --out s.parquet --engine polars",
        r"unknown engine 'polars'",
    ),
    # health
    Case(
        "health-missing-folder",
        "health --data {missing} --as-of 2026-09-01 --out h.csv",
        r"no such file",
        report=True,
    ),
    Case(
        "health-empty-tables",
        "health --data {empty} --as-of 2024-05-01 --out h.csv",
        r"table has no rows",
        report=True,
    ),
    Case("health-bad-as-of", "health --data {short} --as-of 2026-13-45 --out h.csv", r"--as-of"),
    Case(
        "health-as-of-off-grid",
        "health --data {short} --as-of 2026-09-15 --out h.csv",
        r"month start or a Monday",
    ),
    Case(
        "health-as-of-after-data",
        "health --data {short} --as-of 2030-01-01 --out h.csv",
        r"after the end of the data",
    ),
    Case(
        "health-out-under-a-file",
        "health --data {short} --as-of 2026-09-01 --out {blocker}/h.csv",
        r"not a folder",
    ),
    # evaluate
    Case("evaluate-no-input", "evaluate --experiment {fast}", r"--data, --snapshots"),
    Case(
        "evaluate-missing-folder",
        "evaluate --data {missing} --experiment {fast}",
        r"no such file",
        report=True,
    ),
    Case(
        "evaluate-empty-tables",
        "evaluate --data {empty} --experiment {fast}",
        r"table has no rows",
        report=True,
    ),
    Case(
        "evaluate-too-short-history",
        "evaluate --data {short} --experiment {fast}",
        r"not enough history|quarter-start cuts need",
    ),
    Case("evaluate-zero-cuts", "evaluate --data {short} --cuts 0", r"--cuts"),
    Case(
        "evaluate-missing-snapshots",
        "evaluate --snapshots missing.parquet --experiment {fast}",
        r"missing\.parquet",
    ),
    Case(
        "evaluate-out-is-a-file", "evaluate --data {short} --out {blocker}", r"--out.*not a folder"
    ),
    # renewals
    Case("renewals-missing-folder", "renewals --data {missing}", r"no such file", report=True),
    Case("renewals-empty-tables", "renewals --data {empty}", r"table has no rows", report=True),
    Case("renewals-bad-as-of", "renewals --data {short} --as-of notadate", r"--as-of"),
    # timing and winback (models/outcomes/cli.py)
    Case("timing-missing-folder", "timing --data {missing}", r"no such file", report=True),
    Case("timing-empty-tables", "timing --data {empty}", r"table has no rows", report=True),
    Case("timing-out-not-csv", "timing --data {short} --out t.parquet", r"--out.*\.csv"),
    Case(
        "timing-bad-outcomes", "timing --data {short} --outcomes {blocker}", r"--outcomes.*invalid"
    ),
    Case("winback-missing-folder", "winback --data {missing}", r"no such file", report=True),
    Case("winback-empty-tables", "winback --data {empty}", r"table has no rows", report=True),
    Case("winback-bad-top", "winback --data {short} --top 0", r"--top"),
    Case(
        "winback-missing-outcomes",
        "winback --data {short} --outcomes nope.yaml",
        r"--outcomes.*no such file",
    ),
    Case(
        "interventions-missing-folder",
        "interventions --data {missing}",
        r"no such file",
        report=True,
    ),
    Case(
        "interventions-empty-tables",
        "interventions --data {empty}",
        r"table has no rows",
        report=True,
    ),
    Case("interventions-no-plays", "interventions --data {short}", r"no plays to evaluate"),
    Case(
        "interventions-units-not-csv",
        "interventions --data {short} --units u.txt",
        r"--units.*\.csv",
    ),
    Case(
        "forecast-missing-targets",
        "forecast --data {short} --out rep --targets nope.yaml",
        r"--targets.*no such file",
    ),
    # train
    Case(
        "train-missing-folder",
        "train --data {missing} --experiment {fast}",
        r"no such file",
        report=True,
    ),
    Case(
        "train-empty-tables",
        "train --data {empty} --experiment {fast}",
        r"table has no rows",
        report=True,
    ),
    Case(
        "train-too-short-history",
        "train --data {short} --experiment {fast}",
        r"not enough history to train",
    ),
    Case(
        "train-missing-snapshots",
        "train --snapshots missing.parquet --experiment {fast}",
        r"--snapshots missing\.parquet: no such file",
    ),
    Case(
        "train-snapshots-not-parquet",
        "train --snapshots {blocker} --experiment {fast}",
        r"not a readable Parquet file",
    ),
    Case(
        "train-bad-as-of", "train --data {short} --as-of notadate --experiment {fast}", r"--as-of"
    ),
    Case("train-no-input", "train --experiment {fast}", r"--data, --snapshots"),
    # promote
    Case(
        "promote-no-store",
        "promote --model churn --version 1",
        r"no MLflow store.*run `nrr train` first",
    ),
    Case("promote-bad-model", "promote --model revenue --version 1", r"--model"),
    Case(
        "promote-nothing-registered",
        "promote --model expansion --version 1 --workdir {store}",
        r"nrr-expansion has no version '1' \(none registered yet\)",
    ),
    Case(
        "promote-unknown-version",
        "promote --model churn --version 99 --workdir {store}",
        r"nrr-churn has no version '99' \(registered: 1\)",
    ),
    # rollback
    Case("rollback-no-store", "rollback --model churn", r"no MLflow store"),
    Case(
        "rollback-no-previous-champion",
        "rollback --model churn --workdir {store}",
        r"nrr-churn: no previous champion",
    ),
    Case(
        "rollback-model-never-registered",
        "rollback --model expansion --workdir {store}",
        r"nrr-expansion",
    ),
    # backtest-forecast
    Case(
        "backtest-forecast-missing-folder",
        "backtest-forecast --data {missing} --out b.csv",
        r"no such file",
        report=True,
    ),
    Case(
        "backtest-forecast-empty-tables",
        "backtest-forecast --data {empty} --out b.csv",
        r"table has no rows",
        report=True,
    ),
    Case(
        "backtest-forecast-too-short-history",
        "backtest-forecast --data {short} --out b.csv",
        r"not enough history",
    ),
    Case(
        "backtest-forecast-missing-snapshots",
        "backtest-forecast --data {short} --snapshots missing.parquet --out b.csv",
        r"missing\.parquet",
    ),
    # drift
    Case("drift-no-store", "drift --data {short}", r"no MLflow store.*run `nrr train` first"),
    Case(
        "drift-missing-snapshots",
        "drift --snapshots missing.parquet --workdir {store} --model expansion",
        r"cannot read snapshots missing\.parquet",
    ),
    Case(
        "drift-missing-folder",
        "drift --data {missing} --workdir {store} --model expansion",
        r"no such file",
        report=True,
    ),
    Case(
        "drift-bad-as-of",
        "drift --snapshots s.parquet --as-of notadate --workdir {empty_store}",
        r"--as-of",
    ),
    Case("drift-two-inputs", "drift --data {short} --snapshots s.parquet", r"exactly one"),
    # themes and roadmap (serving/voice_cli.py)
    Case("themes-missing-folder", "themes --data {missing} --out th", r"no such file", report=True),
    Case(
        "themes-empty-tables", "themes --data {empty} --out th", r"table has no rows", report=True
    ),
    Case("themes-out-under-a-file", "themes --data {short} --out {blocker}/th", r"not a folder"),
    Case(
        "roadmap-missing-snapshots", "roadmap --snapshots nope.parquet --out rm", r"nope\.parquet"
    ),
    Case("roadmap-snapshots-not-parquet", "roadmap --snapshots {blocker} --out rm", r"Parquet"),
    Case(
        "roadmap-out-under-a-file",
        "roadmap --snapshots x.parquet --out {blocker}/rm",
        r"not a folder",
    ),
    # forecast
    Case("forecast-no-store", "forecast --data {short} --out rep", r"no trained models"),
    Case(
        "forecast-missing-folder",
        "forecast --data {missing} --out rep --workdir {empty_store}",
        r"no such file",
        report=True,
    ),
    Case(
        "forecast-bad-quarter",
        "forecast --data {short} --quarter 2026Q9 --out rep --workdir {empty_store}",
        r"--quarter",
    ),
    Case(
        "forecast-missing-backtest",
        "forecast --data {short} --backtest missing.csv --out rep --workdir {empty_store}",
        r"--backtest.*missing\.csv",
    ),
    Case(
        "forecast-missing-snapshots",
        "forecast --data {short} --snapshots missing.parquet --out rep --workdir {empty_store}",
        r"missing\.parquet",
    ),
    # score
    Case("score-missing-folder", "score --data {missing} --out s.csv", r"does not exist"),
    Case("score-no-store", "score --data {short} --out s.csv", r"no trained models"),
    Case("score-bad-as-of", "score --data {short} --out s.csv --as-of notadate", r"--as-of"),
    Case("score-bad-suffix", "score --data {short} --out s.txt", r"\.csv or \.parquet"),
    Case(
        "score-as-of-after-data",
        "score --data {short} --out s.csv --as-of 2031-01-01 --workdir {empty_store}",
        r"after the data's end",
    ),
    Case(
        "score-empty-tables",
        "score --data {empty} --out s.csv --workdir {empty_store}",
        r"table has no rows",
        report=True,
    ),
    Case(
        "score-out-under-a-file",
        "score --data {short} --rules-only --out {blocker}/s.csv",
        r"not a folder|cannot write",
    ),
    # serve (only inputs that fail before the server would start)
    Case("serve-bad-port", "serve --port abc", r"--port"),
    Case(
        "serve-bad-log-level",
        "serve --port 0 --log-level bogus",
        r"log.level|bogus",
    ),
    # apikey create
    Case("apikey-create-bad-role", "apikey create --role god", r"--role must be one of"),
    Case(
        "apikey-create-keys-file-under-a-file",
        "apikey create --role reader --keys-file {blocker}/keys.json",
        r"not a folder|cannot write",
    ),
    # apikey list / revoke
    Case("apikey-list-keys-file-not-json", "apikey list --keys-file {blocker}", r"malformed"),
    Case("apikey-revoke-unknown-id", "apikey revoke deadbeef", r"no key with id 'deadbeef'"),
)


def command_paths() -> set[tuple[str, ...]]:
    """Every runnable command of `nrr`, as its words: ('train',), ('apikey', 'create'), ..."""

    def walk(cmd: Any, prefix: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        if hasattr(cmd, "commands"):  # a group (typer ships its own click)
            for name, sub in cmd.commands.items():
                yield from walk(sub, (*prefix, name))
        else:
            yield prefix

    return set(walk(typer.main.get_command(build_app()), ()))


def case_command(case: Case) -> tuple[str, ...]:
    words = case.args.split()
    return tuple(words[:2]) if words[0] == "apikey" else (words[0],)


def test_every_command_has_a_wrong_input_case() -> None:
    commands = command_paths()
    assert ("train",) in commands and ("apikey", "create") in commands
    covered = {case_command(c) for c in CASES}
    assert not commands - covered, f"commands without a wrong-input case: {commands - covered}"
    assert not covered - commands, f"cases for commands that do not exist: {covered - commands}"


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The inputs every case draws from, built once per module (and worker)."""
    root = tmp_path_factory.mktemp("cli-errors")
    short = root / "short"  # 4 months: too little for a model or a forecast backtest
    write_company(short, SimulationConfig(accounts=40, months=4, seed=3, end=pd.Timestamp(END)))
    empty = write_parquet(root / "empty", {k: v.iloc[0:0] for k, v in valid_frames().items()})
    blocker = root / "a-file"
    blocker.write_text("not a folder, not a table\n")
    return {"short": short, "empty": empty, "blocker": blocker, "missing": root / "nope"}


def _build_store(folder: Path) -> None:
    """Two MLflow stores: `empty` (no model) and `registry` (nrr-churn v1 champion, no history
    before it; nrr-expansion never registered). The version's files do not exist: the cases
    using it fail before loading a model."""
    from mlflow import MlflowClient

    from models.workspace import Workspace, setup_tracking
    from training.registry import set_champion

    saved = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    try:
        setup_tracking(Workspace.resolve(folder / "empty"))
        shutil.copytree(folder / "empty", folder / "registry")
        uri = f"sqlite:///{folder / 'registry' / 'mlflow.db'}"
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        client.create_registered_model("nrr-churn")
        created = client.create_model_version(
            "nrr-churn", source=(folder / "registry" / "no-such-model").as_uri()
        )
        set_champion(client, "nrr-churn", str(created.version))
    finally:
        _restore_env(saved)


@pytest.fixture(scope="session")
def store_templates(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Path:
    """Built once per test session and shared by the xdist workers (a new store costs ~10 s)."""
    base = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        base = base.parent
    folder = base / "nrr-cli-errors-stores"
    with open(base / "nrr-cli-errors-stores.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / "done").exists():
            shutil.rmtree(folder, ignore_errors=True)
            _build_store(folder)
            (folder / "done").touch()
    return folder


def _rich_consoles() -> list[Console]:
    packages = ("features", "models", "training", "serving", "nrr")
    found = {
        id(value): value
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in packages
        for value in list(vars(module).values())
        if isinstance(value, Console)
    }
    return list(found.values())


def _restore_env(saved: dict[str, str]) -> None:
    for key in [k for k in os.environ if k.startswith(_ENV_PREFIXES)]:
        if key not in saved:
            del os.environ[key]
    os.environ.update(saved)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No NRR_* / MLFLOW_* settings in, none leaking out (MLflow writes MLFLOW_TRACKING_URI)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(_ENV_PREFIXES)}
    for key in saved:
        monkeypatch.delenv(key)
    monkeypatch.setenv("COLUMNS", WIDE)
    # The commands' rich consoles are made at import; under xdist COLUMNS was 80 then, and a
    # console keeps a width it found at birth. Let them read COLUMNS at print time instead.
    for console in _rich_consoles():
        monkeypatch.setattr(console, "_width", None)
    monkeypatch.setenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
    _restore_env(saved)


@pytest.fixture
def cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


def paths(data: dict[str, Path], stores: Path, tmp_path: Path) -> dict[str, Path]:
    """This test's own copies of the stores (a case must not change another's)."""
    store = shutil.copytree(stores / "registry", tmp_path / "store")
    empty_store = shutil.copytree(stores / "empty", tmp_path / "empty_store")
    return {**data, "store": store, "empty_store": empty_store, "fast": FAST_EXPERIMENT}


# ---------------------------------------------------------------------------- checks


def listing(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def message_lines(output: str) -> tuple[list[str], list[str]]:
    """(plain lines, lines drawn inside boxes: tables and typer's error panel), non-empty.

    typer's 'Usage: ...' / 'Try ... --help' lines around a usage error are left out.
    """
    plain, boxed = [], []
    for line in output.splitlines():
        if line.startswith(("Usage: ", "Try '")):
            continue
        text = BOX.sub(" ", line).strip()
        if not text or text == "Error":
            continue
        (boxed if BOX.search(line) else plain).append(text)
    return plain, boxed


def check_answer(case: Case, exit_code: int, output: str) -> None:
    assert exit_code != 0, f"exit 0 on wrong input:\n{output}"
    assert "Traceback" not in output, output
    plain, boxed = message_lines(output)
    # One line names the problem: a plain line, the line in typer's usage-error panel, or
    # (for a contract violation) an error row of the validation report.
    naming = [line for line in plain + boxed if re.search(case.expect, line)]
    assert naming, f"no line names the problem ({case.expect}):\n{output}"
    table_rows = [line for line in boxed if line.startswith(("error ", "warning "))]
    if case.report and table_rows:
        assert any(row.startswith("error ") for row in table_rows), output
    else:
        assert len(boxed) <= 1, f"unexpected table:\n{output}"
    # Short: the naming line and at most one line of context (e.g. the settings used).
    assert len(plain) <= 2, f"more than two lines:\n{output}"


def _cases() -> list[object]:
    marks = {
        c.id: [pytest.mark.xfail(strict=True, reason=c.xfail)] if c.xfail else [] for c in CASES
    }
    return [pytest.param(c, id=c.id, marks=marks[c.id]) for c in CASES]


@pytest.mark.parametrize("case", _cases())
def test_wrong_input_gets_one_line_and_no_trace(
    case: Case, data: dict[str, Path], store_templates: Path, tmp_path: Path, cwd: Path
) -> None:
    where = paths(data, store_templates, tmp_path)
    stores_before = {k: listing(where[k]) for k in ("store", "empty_store")}
    args = shlex.split(case.args.format(**{k: str(v) for k, v in where.items()}))
    result = CliRunner().invoke(build_app(), args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(
            f"{type(result.exception).__name__} escaped: {result.exception}\n{result.output}"
        ) from result.exception
    check_answer(case, result.exit_code, result.output)
    assert listing(cwd) == set(), f"left in the working folder: {sorted(listing(cwd))}"
    for key, before in stores_before.items():
        assert listing(where[key]) == before, f"{key} changed: {listing(where[key]) - before}"


# ------------------------------------------------- the installed command, end to end


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    env["COLUMNS"] = WIDE
    return subprocess.run(
        [str(NRR), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


# A few, each a new process (~3 s of imports): the console script, a clean environment.
SUBPROCESS_CASES = ("validate-missing-folder", "train-too-short-history", "score-no-store")


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_installed_nrr_answers_wrong_input_in_a_line(
    case_id: str, data: dict[str, Path], tmp_path: Path, cwd: Path
) -> None:
    case = next(c for c in CASES if c.id == case_id)
    where = {**data, "fast": FAST_EXPERIMENT}
    args = shlex.split(case.args.format(**{k: str(v) for k, v in where.items()}))
    done = _run(args, cwd)
    check_answer(case, done.returncode, done.stdout + done.stderr)
    assert listing(cwd) == set(), f"left in the working folder: {sorted(listing(cwd))}"
