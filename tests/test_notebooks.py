"""The notebooks run top to bottom (small budgets) and are committed with the outputs
of one full top-to-bottom run of their current code (``make notebooks``).

Code cells run in order in one namespace, like a kernel would, with
``XLSTM_TS_FAST=1`` shrinking data and epochs, from an empty working directory
that must stay empty (anything written goes to a temporary directory).
"""

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "notebooks"))
from run_notebooks import code_digest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_there_are_notebooks():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["01", "02", "03", "04", "05", "06"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, monkeypatch):
    monkeypatch.setenv("XLSTM_TS_FAST", "1")
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__main__"}
    for number, cell in enumerate(_code_cells(path)):
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}, code cell {number}", "exec"), namespace)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_with_the_outputs_of_its_current_code(path):
    notebook = json.loads(path.read_text())
    stored = notebook["metadata"].get("xlstm_ts", {}).get("code_sha256")
    assert stored == code_digest(notebook["cells"]), (
        f"{path.name}: code changed since its outputs were made; run `make notebooks`")
    cells = _code_cells(path)
    assert [c["execution_count"] for c in cells] == list(range(1, len(cells) + 1))
    errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
    assert not errors, f"{path.name} was saved with an error output"
    assert any(c["outputs"] for c in cells)
