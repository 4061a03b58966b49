"""docs/FEATURES.md is the registry rendered; a stale copy fails here."""

from __future__ import annotations

from pathlib import Path

from features.feature_docs import render_markdown
from features.registry import FEATURES

DOC = Path(__file__).resolve().parents[1] / "docs" / "FEATURES.md"


def test_committed_feature_docs_match_the_registry() -> None:
    assert DOC.read_text(encoding="utf-8") == render_markdown(), (
        "docs/FEATURES.md is stale: run `python -m features.feature_docs > docs/FEATURES.md`"
    )


def test_every_feature_appears_once_with_its_direction() -> None:
    text = render_markdown()
    for spec in FEATURES:
        rows = [line for line in text.splitlines() if line.startswith(f"| `{spec.name}` |")]
        assert len(rows) == 1, spec.name
        expected = {1: "higher is healthier", -1: "lower is healthier", 0: "context"}
        assert expected[spec.direction] in rows[0]
