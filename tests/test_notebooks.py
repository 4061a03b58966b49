"""The notebooks stay thin: logic comes from the packages, outputs are stripped, and each has
a papermill `parameters` cell. (`make test` also executes them with nbmake.)"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ("01_explore", "02_train_and_compare", "03_explain", "04_forecast_review")
PROJECT = ("features", "models", "training", "serving", "nrr")
PLOT_HELPER_MAX_LINES = 15
PARAMETERS = ("DATA_DIR", "WORK_DIR", "ACCOUNTS", "MONTHS", "SEED")
# IPython-only lines (magics, shell escapes) are not Python: left out before parsing.
_MAGIC = re.compile(r"^\s*[%!]")


def _code(cell: dict[str, Any]) -> str:
    source = cell.get("source", "")
    text = "".join(source) if isinstance(source, list) else str(source)
    return "\n".join("" if _MAGIC.match(line) else line for line in text.splitlines())


def _code_cells(notebook: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in notebook.get("cells", []) if c.get("cell_type") == "code"]


def logic_problems(notebook: dict[str, Any]) -> list[str]:
    """Functions or classes beyond short `plot_` helpers, and imports from outside the packages."""
    problems = []
    for i, cell in enumerate(_code_cells(notebook)):
        try:
            tree = ast.parse(_code(cell))
        except SyntaxError as exc:
            problems.append(f"code cell {i}: does not parse ({exc.msg})")
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef | ast.AsyncFunctionDef):
                problems.append(f"code cell {i}: defines {node.name!r}; put logic in a package")
            elif isinstance(node, ast.FunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if not node.name.startswith("plot_"):
                    problems.append(f"code cell {i}: defines {node.name!r}; only plot_ helpers")
                elif lines > PLOT_HELPER_MAX_LINES:
                    problems.append(f"code cell {i}: plot helper {node.name!r} has {lines} lines")
            elif isinstance(node, ast.ImportFrom) and node.level:
                problems.append(f"code cell {i}: relative import, not a package")
            elif _imports_tests(node):
                problems.append(f"code cell {i}: imports the tests, not a package")
    return problems


def _imports_tests(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "tests"
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "tests" for a in node.names)
    return False


def output_problems(notebook: dict[str, Any]) -> list[str]:
    """Stored outputs or execution counts (git should hold stripped notebooks only)."""
    problems = []
    for i, cell in enumerate(_code_cells(notebook)):
        if cell.get("outputs"):
            problems.append(f"code cell {i}: has stored outputs")
        if cell.get("execution_count") is not None:
            problems.append(f"code cell {i}: has an execution count")
    return problems


def parameter_problems(notebook: dict[str, Any]) -> list[str]:
    """One `parameters`-tagged cell of plain assignments naming every expected parameter."""
    tagged = [
        c for c in _code_cells(notebook) if "parameters" in c.get("metadata", {}).get("tags", [])
    ]
    if len(tagged) != 1:
        return [f"{len(tagged)} cells tagged 'parameters' (expected exactly 1)"]
    body = ast.parse(_code(tagged[0])).body
    if not all(isinstance(n, ast.Assign | ast.AnnAssign) for n in body):
        return ["the parameters cell holds more than assignments"]
    names = {
        t.id
        for n in body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    missing = [p for p in PARAMETERS if p not in names]
    return [f"parameters cell lacks {missing}"] if missing else []


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _cell(source: str, **extra: Any) -> dict[str, Any]:
    return {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
            "source": source, **extra}  # fmt: skip


PARAMS_CELL = _cell(
    'DATA_DIR = "d"\nWORK_DIR = "w"\nACCOUNTS = 10\nMONTHS = 6\nSEED = 1\n',
    metadata={"tags": ["parameters"]},
)


def test_the_four_numbered_notebooks_exist() -> None:
    assert tuple(p.stem for p in NOTEBOOKS) == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_defines_no_logic(path: Path) -> None:
    assert logic_problems(_load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_stored_without_outputs(path: Path) -> None:
    assert output_problems(_load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_has_a_parameters_cell(path: Path) -> None:
    assert parameter_problems(_load(path)) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_imports_the_project_packages(path: Path) -> None:
    """Thin, but not empty: the logic it shows comes from the packages."""
    imported = set()
    for cell in _code_cells(_load(path)):
        for node in ast.walk(ast.parse(_code(cell))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported & set(PROJECT)


def test_checker_accepts_a_short_plot_helper_and_magics() -> None:
    helper = "%matplotlib inline\ndef plot_bars(ax, frame):\n    frame.plot.bar(ax=ax)\n"
    notebook = {"cells": [PARAMS_CELL, _cell(helper), {"cell_type": "markdown", "source": "x"}]}
    assert logic_problems(notebook) == []
    assert output_problems(notebook) == []
    assert parameter_problems(notebook) == []


@pytest.mark.parametrize(
    ("source", "fragment"),
    [
        ("def build_features(frame):\n    return frame\n", "'build_features'"),
        ("class Model:\n    pass\n", "'Model'"),
        ("async def plot_later():\n    pass\n", "'plot_later'"),
        ("for k in range(3):\n    def helper():\n        return k\n", "'helper'"),
        ("def plot_all(ax):\n" + "    ax.plot([1])\n" * 20, "has 21 lines"),
        ("from tests.snapshot_factories import make_source\n", "imports the tests"),
        ("import tests.training_factories\n", "imports the tests"),
        ("from .local import thing\n", "relative import"),
        ("x = (\n", "does not parse"),
    ],
    ids=[
        "function",
        "class",
        "async",
        "nested",
        "long-plot-helper",
        "from-tests",
        "import-tests",
        "relative",
        "syntax",
    ],  # fmt: skip
)
def test_checker_rejects_logic_in_a_notebook(source: str, fragment: str) -> None:
    problems = logic_problems({"cells": [PARAMS_CELL, _cell(source)]})
    assert problems and fragment in problems[0]


def test_checker_rejects_stored_outputs_and_execution_counts() -> None:
    ran = _cell("print(1)", outputs=[{"output_type": "stream", "text": "1"}], execution_count=3)
    problems = output_problems({"cells": [ran]})
    assert problems == ["code cell 0: has stored outputs", "code cell 0: has an execution count"]


@pytest.mark.parametrize(
    ("cells", "fragment"),
    [
        ([_cell("DATA_DIR = 'd'")], "0 cells tagged"),
        ([PARAMS_CELL, PARAMS_CELL], "2 cells tagged"),
        (
            [_cell("SEED = 1\nprint(SEED)", metadata={"tags": ["parameters"]})],
            "more than assignments",
        ),
        ([_cell("SEED = 1", metadata={"tags": ["parameters"]})], "lacks ['DATA_DIR'"),
    ],
    ids=["untagged", "twice", "statements", "incomplete"],
)
def test_checker_rejects_a_missing_or_bad_parameters_cell(
    cells: list[dict[str, Any]], fragment: str
) -> None:
    problems = parameter_problems({"cells": cells})
    assert problems and fragment in problems[0]
