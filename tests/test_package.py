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
