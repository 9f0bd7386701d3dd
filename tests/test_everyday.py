"""The everyday path (issue 18): messages that name a fix, outputs anyone may read."""

import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlstm_ts import XLSTMForecaster
from xlstm_ts.config import ConfigError, parse_config


def test_unknown_config_key_suggests_the_near_one():
    with pytest.raises(ConfigError, match=r"model.max_epoch: unknown key. Did you mean "
                                          r"'max_epochs'\?"):
        parse_config({"data": {"path": "x.csv"}, "model": {"max_epoch": 3}})
    with pytest.raises(ConfigError, match=r"data.time_cl: unknown key. Did you mean 'time_col'"):
        parse_config({"data": {"path": "x.csv", "time_cl": "ds"}})


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_outputs_get_the_permissions_of_ordinary_new_files(tmp_path, umask_022):
    """CLI forecasts came out -rw------- and model folders drwx------."""
    from xlstm_ts.cli import main

    times = pd.date_range("2024-01-01", periods=60, freq="D")
    rng = np.random.default_rng(0)
    pd.DataFrame({"ds": times, "y": 10 + rng.standard_normal(60)}).to_csv(
        tmp_path / "d.csv", index=False)
    model = XLSTMForecaster(lookback=14, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, progress_bar=False)
    model.fit(pd.read_csv(tmp_path / "d.csv", parse_dates=["ds"])).save(tmp_path / "model")
    assert main(["--quiet", "predict", "--model", str(tmp_path / "model"), "--input",
                 str(tmp_path / "d.csv"), "--output", str(tmp_path / "f.csv")]) == 0
    assert stat.S_IMODE((tmp_path / "f.csv").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "model").stat().st_mode) == 0o755
    for file in Path(tmp_path / "model").iterdir():
        assert stat.S_IMODE(file.stat().st_mode) == 0o644, file.name
