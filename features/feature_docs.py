"""docs/FEATURES.md rendered from the feature registry, so the docs cannot drift from the code.

Regenerate with `python -m features.feature_docs > docs/FEATURES.md`; a test fails when the
committed file differs from what the registry renders.
"""

from __future__ import annotations

from features.registry import FEATURES, FeatureSpec

_DIRECTION = {1: "higher is healthier", -1: "lower is healthier", 0: "context"}


def _row(spec: FeatureSpec) -> str:
    needs = ", ".join(f"`{n}`" for n in spec.needs) or "required tables"
    description = spec.description.replace("|", "\\|")
    unit = f" ({spec.unit})" if spec.unit else ""
    return (
        f"| `{spec.name}` | {spec.kind}{unit} | {_DIRECTION[spec.direction]} | "
        f"{description} | {needs} |"
    )


def render_markdown() -> str:
    """The whole feature reference, grouped by family in registry order."""
    lines = [
        "# Snapshot features",
        "",
        "Generated from `features/registry.py` by `python -m features.feature_docs`; do not",
        "edit by hand. Every feature is computed only from rows observed strictly before the",
        "snapshot's `as_of`. A feature whose table or column is absent from the export is",
        "left out (never zero-filled); the models and the health score then work without it.",
        "",
    ]
    families = list(dict.fromkeys(spec.family for spec in FEATURES))
    for family in families:
        specs = [spec for spec in FEATURES if spec.family == family]
        lines += [
            f"## {family} ({len(specs)})",
            "",
            "| feature | kind | direction | meaning | needs |",
            "|---|---|---|---|---|",
            *(_row(spec) for spec in specs),
            "",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    sys.stdout.write(render_markdown())
