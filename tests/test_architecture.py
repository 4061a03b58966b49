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


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """Project modules a file imports anywhere (function-level imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found.update(name for name in names if name in known)
    return found


def test_no_import_cycles_between_modules() -> None:
    # A lazy import inside a function still ties two modules together: app <-> routes was
    # one, hidden from the package-level check above.
    files = {_module_name(p): p for package in PACKAGES for p in _modules(package)}
    known = set(files)
    graph = {name: _imported_modules(path, known) - {name} for name, path in files.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    # Importing a package's __init__ to reach a submodule is not a cycle of logic.
    real = [c for c in cycles if not any(files[m].name == "__init__.py" for m in c)]
    assert real == [], f"import cycles: {real}"


def test_nrr_serve_starts_without_the_training_stack() -> None:
    # /healthz must answer soon after launch; `nrr serve` imports the serving stage only.
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['nrr', 'serve', '--help']\n"
        "from nrr.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'training')\n"
        "print('LOADED', loaded)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert "Usage: nrr serve" in done.stdout, done.stderr
    assert "LOADED []" in done.stdout
