"""Every documented operation shows a 200 example, inline or in the schema it references."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from api_factories import make_app


def _has_example(node: Any, components: dict[str, Any], seen: set[str]) -> bool:
    text = json.dumps(node)
    if '"example"' in text or '"examples"' in text:
        return True
    for name in re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text):
        if name not in seen:
            seen.add(name)
            if _has_example(components.get(name, {}), components, seen):
                return True
    return False


def test_every_operation_documents_an_example_response(tmp_path: Path) -> None:
    app, _ = make_app(tmp_path)
    schema = app.openapi()
    components = schema.get("components", {}).get("schemas", {})
    missing = [
        f"{method.upper()} {path}"
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if not _has_example(operation["responses"].get("200", {}), components, set())
    ]
    assert missing == []
    # the forecast routes also document why they fail
    assert {"401", "404", "503"} <= set(schema["paths"]["/v1/forecast"]["get"]["responses"])


def test_the_checker_notices_an_operation_without_example() -> None:
    components = {"Plain": {"type": "object", "properties": {"a": {"type": "string"}}}}
    bare = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Plain"}}}}
    assert not _has_example(bare, components, set())
    components["Plain"]["examples"] = [{"a": "x"}]
    assert _has_example(bare, components, set())
