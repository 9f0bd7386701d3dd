"""The xlstm-ts command line: end to end, bad configs, atomic and idempotent outputs."""

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from xlstm_ts.cli import main

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
data:
  path: {data}
  time_col: Date
  target_col: Passengers
model:
  lookback: 36
  horizon: 12
  patch_len: 6
  patch_stride: 3
  max_epochs: 2
  batches_per_epoch: 10
  random_state: 0
output:
  model_dir: {out}/model
  backtest: {out}/backtest.csv
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    shutil.copy(ROOT / "datasets" / "airline.csv", tmp / "airline.csv")
    config = tmp / "airline.yaml"
    config.write_text(CONFIG.format(data=tmp / "airline.csv", out=tmp / "out"))
    assert main(["--quiet", "fit", "--config", str(config)]) == 0
    return tmp, config


def predict_args(tmp, output, *extra):
    return ["--quiet", "predict", "--model", str(tmp / "out" / "model"), "--input",
            str(tmp / "airline.csv"), "--output", str(output), *extra]


def test_fit_predict_writes_forecasts_with_metadata(workspace):
    tmp, _ = workspace
    out = tmp / "forecasts.csv"
    assert main(predict_args(tmp, out, "--as-of", "1959-12-01")) == 0
    frame = pl.read_csv(out, try_parse_dates=True)
    assert frame.columns == ["unique_id", "Date", "y_pred", "cutoff", "model_id"]
    assert frame.height == 12 and frame["cutoff"].unique().to_list()[0].year == 1959
    assert frame["Date"].min().month == 1 and frame["y_pred"].is_finite().all()


def test_rerun_is_byte_identical_and_parquet_works(workspace):
    tmp, _ = workspace
    out = tmp / "again.csv"
    assert main(predict_args(tmp, out, "--as-of", "1958-06-01")) == 0
    first = out.read_bytes()
    assert main(predict_args(tmp, out, "--as-of", "1958-06-01")) == 0
    assert out.read_bytes() == first
    assert main(predict_args(tmp, tmp / "f.parquet", "--horizon", "24")) == 0
    assert pl.read_parquet(tmp / "f.parquet").height == 24


def test_validate_and_backtest(workspace):
    tmp, config = workspace
    assert main(["--quiet", "validate", "--config", str(config)]) == 0
    assert main(["--quiet", "backtest", "--config", str(config),
                 "--set", "backtest.n_windows=2"]) == 0
    assert pl.read_csv(tmp / "out" / "backtest.csv")["cutoff"].n_unique() == 2


@pytest.mark.parametrize("override, message", [
    ("model.lookbak=3", "model.lookbak: unknown key"),
    ("model.lookback=ten", "model.lookback: expected int"),
    ("backtest.n_windows=two", "backtest.n_windows: expected int"),
    ("trackin.enabled=true", "trackin: unknown section"),
    ("data.path=/no/such/file.csv", "does not exist"),
    ("model.horizon=-2", "horizon must be a positive int"),
    ("data.layout=tall", "data.layout: expected 'long' or 'wide'"),
])
def test_bad_configs_exit_2_with_the_key_path(workspace, capsys, override, message):
    _, config = workspace
    assert main(["validate", "--config", str(config), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_missing_config_and_bad_yaml(tmp_path, capsys):
    assert main(["fit", "--config", str(tmp_path / "none.yaml")]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n")
    assert main(["fit", "--config", str(bad)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_killed_prediction_leaves_the_previous_output_intact(workspace):
    tmp, _ = workspace
    out = tmp / "kill.csv"
    out.write_text("previous output\n")
    previous = out.read_bytes()
    reference = tmp / "reference.csv"
    assert main(predict_args(tmp, reference)) == 0
    finished = False
    for delay in (1.0, 2.5, 12.0):  # the last one lets the run finish
        proc = subprocess.Popen([sys.executable, "-m", "xlstm_ts",
                                 *predict_args(tmp, out)], stderr=subprocess.DEVNULL)
        time.sleep(delay)
        finished = proc.poll() is not None
        if not finished:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        content = out.read_bytes()
        assert content in (previous, reference.read_bytes())  # never partial
        if finished:
            break
    assert finished and out.read_bytes() == reference.read_bytes()
