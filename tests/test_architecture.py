"""The one-way imports of docs/ARCHITECTURE.md, checked on the import statements of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("experiments", "features", "models", "training", "serving", "nrr")
# What each package may import from the project (besides itself). `experiments` holds only
# the shipped YAML files and their paths, so every layer may read its defaults.
ALLOWED: dict[str, set[str]] = {
    "experiments": set(),
    "features": {"experiments"},
    "models": {"experiments", "features"},
    "training": {"experiments", "features", "models"},
    "serving": {"experiments", "features", "models"},
    "nrr": {"experiments", "features", "models", "training", "serving"},
}


def _project_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names & set(PACKAGES)


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_follow_the_data_flow(package: str) -> None:
    offenders = {
        str(p.relative_to(ROOT)): sorted(bad)
        for p in _modules(package)
        if (bad := _project_imports(p) - ALLOWED[package] - {package})
    }
    assert offenders == {}, f"{package}/ may import only {sorted(ALLOWED[package])}"


def test_checker_sees_a_forbidden_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("from training.pipeline import train\nimport models.rules.health\n")
    assert _project_imports(module) == {"training", "models"}


def test_packages_resolve_to_this_repository() -> None:
    # Generic top-level names could be shadowed by another installed distribution.
    import features
    import models
    import serving
    import training

    for mod in (features, models, training, serving):
        assert Path(mod.__file__).resolve().is_relative_to(ROOT), mod.__file__


def test_notebooks_define_no_logic() -> None:
    import json

    for nb in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            assert not cell.get("outputs"), f"{nb.name}: stored outputs must be stripped"
            src = "".join(cell["source"])
            tree = ast.parse(src)
            defs = [n for n in tree.body if isinstance(n, ast.ClassDef | ast.FunctionDef)]
            assert all(
                isinstance(d, ast.FunctionDef) and d.name.startswith("plot_") and len(d.body) <= 15
                for d in defs
            ), f"{nb.name}: notebooks import logic from the packages; only small plot_ helpers"


CLOCK_CALLS = {
    ("datetime", "now"),
    ("datetime", "utcnow"),
    ("date", "today"),
    ("Timestamp", "now"),
    ("time", "time"),
}


def _clock_calls(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and (_owner(node.value), node.attr) in CLOCK_CALLS
    ]


def _owner(node: ast.expr) -> str | None:
    # `datetime.now` and `pd.Timestamp.now` alike: the name right before the attribute
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def test_features_never_read_the_clock() -> None:
    # as_of and "now" are arguments of every feature computation; only the root command
    # (through models.clock) reads the wall clock
    offenders = {
        str(p.relative_to(ROOT)): lines for p in _modules("features") if (lines := _clock_calls(p))
    }
    assert offenders == {}


def test_the_clock_check_sees_a_clock_call(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import pandas as pd\nnow = pd.Timestamp.now()\n")
    assert _clock_calls(module) == [2]
