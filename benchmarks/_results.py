"""Shared by the benchmark scripts: where results go and how they are written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_result(name: str, text: str, path: Path | None = None) -> Path:
    """Print ``text`` and write it atomically to ``benchmarks/results/<name>`` (or ``path``)."""
    print(text)
    target = path or RESULTS / name
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, target)
    return target
