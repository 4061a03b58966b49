"""Test helpers for the engine tests: a PATH on which no `java` can be found."""

from __future__ import annotations

import os
from pathlib import Path


def path_without_java(shadow: Path) -> str:
    """PATH with every folder holding a `java` replaced by a copy (symlinks) without it.

    The folders stay: Spark's launch scripts need the shell tools that live beside java
    (/usr/bin), so dropping the folder would break Spark for another reason.
    """
    folders = []
    for i, folder in enumerate(os.environ.get("PATH", "").split(os.pathsep)):
        if not (Path(folder) / "java").exists():
            folders.append(folder)
            continue
        copy = shadow / str(i)
        copy.mkdir(parents=True, exist_ok=True)
        for entry in Path(folder).iterdir():
            if entry.name != "java" and not (copy / entry.name).exists():
                (copy / entry.name).symlink_to(entry)
        folders.append(str(copy))
    return os.pathsep.join(folders)
