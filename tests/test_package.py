import subprocess
import sys

import xlstm_ts


def test_version_from_metadata():
    assert xlstm_ts.__version__ != "0.0.0+unknown"


def test_cli_version():
    out = subprocess.run([sys.executable, "-m", "xlstm_ts", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"xlstm-ts {xlstm_ts.__version__}"


def test_cells_do_not_import_models():
    """Imports point one way: cells -> models, never back."""
    code = ("import sys, xlstm_ts.cells; "
            "print(any(m.startswith('xlstm_ts.models') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_module_has_a_floor():
    """Issue 48, item 4: a new top-level module must be placed in the layers contract,
    or import-linter would leave it unconstrained."""
    from pathlib import Path

    import pytest

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    root = Path(__file__).resolve().parent.parent
    contracts = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in contracts["contracts"] if c["type"] == "layers")["layers"]
    placed = {name.strip().removeprefix("xlstm_ts.") for layer in layers
              for name in layer.split("|")}
    package = root / "xlstm_ts"
    modules = {p.stem for p in package.glob("*.py")} | {
        p.name for p in package.iterdir() if (p / "__init__.py").exists()}
    public = {m for m in modules if not m.startswith("_")}
    assert public - placed == set(), f"not placed in a floor: {sorted(public - placed)}"
    assert placed - public == set(), f"placed but missing: {sorted(placed - public)}"
