"""The README's Python examples run as written.

Blocks fenced as ```python run as they are. ```py marks fragments that continue a
session (a frame ``df``, a model ``model``): they run in order in one namespace that
holds those names, with one trial per study; the multi-node one, which needs GPUs,
is checked for syntax and parameter names.
"""

import inspect
import re
import warnings
from pathlib import Path

import mlflow
import tirex2_reference

from xlstm_ts import XLSTMForecaster, datasets
from xlstm_ts.evaluation import InSampleWarning
from xlstm_ts.tracking import DEFAULT_URI

README = Path(__file__).resolve().parent.parent / "README.md"
CELLS = README.parent / "docs" / "cells.md"  # the README's section on the cells, moved out


def test_readme_python_blocks_run():
    for page in (README, CELLS):
        blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
        assert blocks, f"{page.name} has no python example"
        for block in blocks:
            exec(compile(block, str(page), "exec"), {})


def test_readme_fragments_run_in_one_session(tmp_path, monkeypatch):
    blocks = re.findall(r"```py\n(.*?)```", README.read_text(), flags=re.S)
    assert len(blocks) >= 4
    monkeypatch.chdir(tmp_path)  # stores and studies land in the working directory
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    df = datasets.load_airline()
    session = {"df": df, "history_df": df.head(120), "XLSTMForecaster": XLSTMForecaster,
               "model": XLSTMForecaster(horizon=12, lookback=36, max_epochs=2,
                                        progress_bar=False, random_state=0)}
    estimator_params = set(inspect.signature(XLSTMForecaster).parameters)
    warnings.simplefilter("error", InSampleWarning)  # no example scores on training data
    # the pretrained examples read a checkpoint folder: a tiny one with random weights
    cfg = tirex2_reference.config()
    folder = tirex2_reference.save_reference(tirex2_reference.reference_model(cfg), cfg,
                                             tmp_path / "TiRex-2")
    try:
        for block in blocks:
            block = block.replace('"path/to/TiRex-2"', repr(str(folder)))
            code = compile(block, str(README), "exec")
            if 'accelerator="gpu"' in block:  # needs GPUs and nodes: names only
                used = set(re.findall(r"(\w+)=", block))
                assert used <= estimator_params, used - estimator_params
                continue
            exec(compile(re.sub(r"n_trials=\d+", "n_trials=1", block), str(README), "exec")
                 if "n_trials" in block else code, session)
    finally:
        mlflow.set_tracking_uri(DEFAULT_URI)
    assert len(session["forecasts"]) == 12 and session["model"].horizon == 12
    assert (tmp_path / "study.db").exists() and (tmp_path / "mlflow.db").exists()

