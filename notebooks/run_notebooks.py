"""Run each notebook top to bottom in a Jupyter kernel, at full settings, and save it
with its outputs (``make notebooks``). Cells run in a temporary working directory, so
nothing lands in the checkout; a failing cell stops the run and saves nothing.

    python notebooks/run_notebooks.py [notebooks/01_quickstart.ipynb ...]
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def code_digest(cells: list) -> str:
    """sha256 of the code cells' sources: ``tests/test_notebooks.py`` compares it with
    the one stored at execution, so an edited notebook without fresh outputs fails."""
    sources = [c["source"] if isinstance(c["source"], str) else "".join(c["source"])
               for c in cells if c["cell_type"] == "code"]
    return hashlib.sha256("\n\x00".join(sources).encode()).hexdigest()


def execute(path: Path) -> None:
    import nbformat  # the `notebooks` extra; not needed to read the digest
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as workdir:
        NotebookClient(notebook, timeout=1800, kernel_name="python3",
                       resources={"metadata": {"path": workdir}}).execute()
    notebook.metadata.pop("widgets", None)
    notebook.metadata["xlstm_ts"] = {"code_sha256": code_digest(notebook.cells)}
    staged = path.with_suffix(".ipynb.tmp")
    nbformat.write(notebook, staged)
    staged.replace(path)  # atomic: an interrupted run leaves the old notebook whole
    print(f"{path.name}: {time.perf_counter() - start:.0f} s", flush=True)


def main() -> None:
    os.environ.pop("XLSTM_TS_FAST", None)  # full settings, whatever the shell says
    paths = [Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        execute(path)


if __name__ == "__main__":
    main()
