"""The xlstm-ts command line: end to end, bad configs, atomic and idempotent outputs."""

import shutil
from pathlib import Path

import polars as pl
import pytest

from xlstm_ts import XLSTMForecaster
from xlstm_ts.cli import main
from xlstm_ts.config import load_config

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
    # issue 49, item 5: the model's own id, wherever the model directory lies
    shutil.copytree(tmp / "out" / "model", tmp / "moved")
    moved = tmp / "moved.csv"
    assert main(["--quiet", "predict", "--model", str(tmp / "moved"), "--input",
                 str(tmp / "airline.csv"), "--output", str(moved), "--as-of", "1959-12-01"]) == 0
    ids = pl.read_csv(moved)["model_id"].unique().to_list() + frame["model_id"].unique().to_list()
    assert ids == [XLSTMForecaster.load(tmp / "moved").model_id_] * 2
    assert ids[0].startswith("xlstm-ts-") and len(ids[0]) == 21


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
    ("model.lookback=ten", "model.lookback: lookback must be a positive int"),
    ("backtest.n_windows=two", "backtest.n_windows: expected int"),
    ("trackin.enabled=true", "trackin: unknown section"),
    ("data.path=/no/such/file.csv", "does not exist"),
    ("model.horizon=-2", "horizon must be a positive int"),
    ("data.layout=tall", "data.layout: expected 'long', 'wide' or 'rows'"),
    ("predict.update=maybe", "predict.update: expected bool"),
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


def test_a_write_failing_part_way_leaves_the_previous_output_intact(tmp_path):
    """The writer fails after writing half the rows, on purpose (deterministic, unlike
    killing a child process at a guessed moment): the old bytes stay, and no temporary
    file is left beside them."""
    import polars as pl

    from xlstm_ts._io import atomic_write

    out = tmp_path / "forecasts.csv"
    out.write_text("previous output\n")
    frame = pl.DataFrame({"unique_id": ["a"] * 1000, "y_pred": range(1000)})

    def write_half_then_fail(tmp: str) -> None:
        frame.head(500).write_csv(tmp)
        assert Path(tmp).stat().st_size > 0  # something was written
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(out, write_half_then_fail)
    assert out.read_text() == "previous output\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["forecasts.csv"]
    atomic_write(out, frame.write_csv)  # and a write that finishes replaces it whole
    assert pl.read_csv(out).equals(frame)


def test_predict_from_a_config(workspace, tmp_path):
    tmp, _ = workspace
    config = tmp_path / "batch.yaml"
    config.write_text(f"""
data: {{path: {tmp / 'airline.csv'}, time_col: Date, target_col: Passengers}}
predict: {{model: {tmp / 'out' / 'model'}, horizon: 6, as_of: '1959-12-01'}}
output: {{forecasts: {tmp_path / 'batch.csv'}}}
""")
    assert main(["--quiet", "predict", "--config", str(config)]) == 0
    frame = pl.read_csv(tmp_path / "batch.csv", try_parse_dates=True)
    assert frame.height == 6 and str(frame["Date"].min())[:10] == "1960-01-01"
    flags = tmp_path / "flags.csv"
    assert main(predict_args(tmp, flags, "--horizon", "6", "--as-of", "1959-12-01")) == 0
    assert flags.read_bytes() == (tmp_path / "batch.csv").read_bytes()
    assert main(["--quiet", "predict", "--config", str(config), "--set",
                 "predict.horizon=3"]) == 0
    assert pl.read_csv(tmp_path / "batch.csv").height == 3


def test_predict_without_model_or_output_is_a_usage_error(capsys):
    assert main(["predict", "--input", "x.csv"]) == 2
    assert "predict needs --model, --output" in capsys.readouterr().err


def test_scheduled_updates_absorb_new_rows_once(tmp_path):
    airline = pl.read_csv(ROOT / "datasets" / "airline.csv")  # Date as text, "1949-01"
    airline.filter(pl.col("Date") < "1960-01").write_csv(tmp_path / "train.csv")
    airline.write_csv(tmp_path / "latest.csv")
    config = tmp_path / "stream.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "train.csv", out=tmp_path))
    assert main(["--quiet", "fit", "--config", str(config), "--set",
                 "model.network=xlstmtime"]) == 0
    model = tmp_path / "model"

    def run(as_of, output):
        return main(["--quiet", "predict", "--model", str(model), "--input",
                     str(tmp_path / "latest.csv"), "--output", str(output), "--update",
                     "--as-of", as_of])

    assert run("1960-03-01", tmp_path / "a.csv") == 0  # absorbs Jan..Mar 1960
    first = pl.read_csv(tmp_path / "a.csv", try_parse_dates=True)
    assert str(first["Date"].min())[:10] == "1960-04-01"
    assert str(first["cutoff"].unique().item())[:10] == "1960-03-01"
    assert (model / "stream.pt").exists()
    assert run("1960-03-01", tmp_path / "b.csv") == 0  # a re-run: nothing new to absorb
    assert (tmp_path / "b.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    assert run("1960-06-01", tmp_path / "c.csv") == 0  # three more months
    later = pl.read_csv(tmp_path / "c.csv", try_parse_dates=True)
    assert str(later["Date"].min())[:10] == "1960-07-01" and later["y_pred"].is_finite().all()


def test_predict_update_writes_the_forecasts_before_saving_the_model(tmp_path, monkeypatch):
    """The model save fails on purpose: the forecasts are already whole on disk when it
    starts, the command fails, and the saved model is the old one (a re-run redoes both)."""
    import xlstm_ts.cli as cli

    airline = pl.read_csv(ROOT / "datasets" / "airline.csv")
    airline.filter(pl.col("Date") < "1960-01").write_csv(tmp_path / "train.csv")
    airline.write_csv(tmp_path / "latest.csv")
    config = tmp_path / "stream.yaml"
    config.write_text(CONFIG.format(data=tmp_path / "train.csv", out=tmp_path))
    assert main(["--quiet", "fit", "--config", str(config), "--set",
                 "model.network=xlstmtime", "--set", "model.max_epochs=1"]) == 0
    model, output = tmp_path / "model", tmp_path / "forecasts.csv"
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    seen = []

    def save_fails(fitted, directory):
        seen.append(pl.read_csv(output).height)  # the forecasts exist, complete
        raise OSError("disk full")

    monkeypatch.setattr(cli, "_save_model_atomically", save_fails)
    code = main(["--quiet", "predict", "--model", str(model), "--input",
                 str(tmp_path / "latest.csv"), "--output", str(output), "--update",
                 "--as-of", "1960-03-01"])
    assert code == 1 and seen == [12]
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")
                                          if not p.name.startswith("pretrain")))
def test_shipped_configs_parse(name, monkeypatch):
    config = load_config(ROOT / "configs" / name)
    assert (ROOT / config.data.path).exists()
    monkeypatch.chdir(ROOT)  # and the data checks of `validate`, as a user would run them
    assert main(["--quiet", "validate", "--config", f"configs/{name}"]) == 0


def test_m4_config_validates_its_data(monkeypatch):
    monkeypatch.chdir(ROOT)
    assert main(["--quiet", "validate", "--config", "configs/m4_hourly.yaml"]) == 0


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("pretrain*.yaml")))
def test_shipped_pretraining_configs_parse(name):
    from xlstm_ts.pretraining import PretrainConfig

    config = PretrainConfig.load(ROOT / "configs" / name)
    assert config.network().context_len >= config.network().patch_size
    # the bundled datasets at least (../shared beside the checkout is read where present)
    assert Path(config.corpus.real_folders[0]).resolve() == (ROOT / "datasets").resolve()


def test_predict_from_a_model_directory_starts_without_training_or_tracking_packages(
        workspace, tmp_path):
    """A scheduled `xlstm-ts predict` paid for importing Lightning, MLflow, matplotlib and
    Spark (6.5 s; issue 49, item 4): none of them is needed to forecast from a saved
    model (benchmarks/cli_start.py measures the start)."""
    import subprocess
    import sys

    tmp, _ = workspace
    args = predict_args(tmp, tmp_path / "out.csv")
    probe = ("import sys; from xlstm_ts.cli import main; "
             f"code = main({args!r}); "
             "print(code, sorted(m for m in ('lightning', 'mlflow', 'matplotlib', 'pyspark', "
             "'optuna') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False)
    assert done.stdout.strip().splitlines()[-1] == "0 []", done.stderr[-2000:]
    assert (tmp_path / "out.csv").exists()
