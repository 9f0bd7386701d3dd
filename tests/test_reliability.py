"""No silent wrong forecast, no half-written model, every bad input named (issue 16).

Each test here failed before its fix: the symptom is in its docstring.
"""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch

from xlstm_ts import XLSTMForecaster
from xlstm_ts.persistence import DamagedModelError

TINY = {"lookback": 16, "horizon": 4, "d_model": 8, "num_heads": 2, "patch_len": 4,
        "patch_stride": 4, "max_epochs": 1, "batches_per_epoch": 2, "batch_size": 8,
        "progress_bar": False, "random_state": 0}


def _levels(ids=("x", "y", "z"), levels=(10.0, 100.0, 1000.0), n=40, start="2024-01-01",
            tz=None):
    """Series at constant-ish levels: a right forecast is near each series' level."""
    rng = np.random.default_rng(0)
    times = pd.date_range(start, periods=n, freq="h", tz=tz)
    return pd.concat([pd.DataFrame({"unique_id": i, "ds": times,
                                    "y": lv * (1 + 0.01 * rng.standard_normal(n))})
                      for i, lv in zip(ids, levels, strict=True)], ignore_index=True)


@pytest.fixture(scope="module")
def levels_model():
    return XLSTMForecaster(**TINY).fit(_levels())


def _by_id(forecast) -> dict:
    frame = forecast if isinstance(forecast, pd.DataFrame) else forecast.to_pandas()
    return frame.groupby("unique_id")["y_pred"].mean().to_dict()


def test_polars_enum_ids_keep_their_series(levels_model):
    """Enum(['z','x','y']) with interleaved rows mapped x's forecast to z and dropped z."""
    df = pl.from_pandas(_levels()).sort("ds")  # rows interleaved across series
    df = df.with_columns(pl.col("unique_id").cast(pl.Enum(["z", "x", "y"])))
    got = _by_id(levels_model.predict(df=df))
    plain = _by_id(levels_model.predict(df=pl.from_pandas(_levels())))
    assert set(got) == {"x", "y", "z"}
    for key in got:
        assert got[key] == pytest.approx(plain[key], rel=1e-5)
    XLSTMForecaster(**TINY).fit(df)  # fit accepted it too (it raised "duplicate pairs")


def test_large_magnitudes_forecast_at_their_scale():
    """Values around 1e20 gave all-NaN forecasts (the window's variance overflowed)."""
    df = _levels(levels=(1e20, 2e20, 3e20))
    forecast = XLSTMForecaster(**TINY).fit(df).predict()
    means = _by_id(forecast)
    assert np.isfinite(forecast["y_pred"]).all()
    assert 1e19 < means["x"] < 1e21 and 1e20 < means["z"] < 1e21


def test_values_beyond_float32_are_rejected_naming_the_series():
    """1e39 became inf in float32 and gave NaN forecasts or 'lower learning_rate'."""
    df = _levels()
    df.loc[5, "y"] = 1e39
    with pytest.raises(ValueError, match=r"'y'.*float32.*'x'"):
        XLSTMForecaster(**TINY).fit(df)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_future_covariates_are_rejected(bad):
    """inf in future_df gave all-NaN forecasts; NaN in a polars future_df half NaN."""
    df = _levels()
    df["promo"] = (df["ds"].dt.hour % 2).astype(float)
    model = XLSTMForecaster(**TINY, future_covariates=("promo",)).fit(df)
    times = pd.date_range(df["ds"].max() + pd.Timedelta("1h"), periods=4, freq="h")
    future_df = pd.concat([pd.DataFrame({"unique_id": i, "ds": times, "promo": 1.0})
                           for i in ("x", "y", "z")], ignore_index=True)
    future_df.loc[2, "promo"] = bad
    for frame in (future_df, pl.from_pandas(future_df, nan_to_null=False)):
        with pytest.raises(ValueError, match=r"future_df (column 'promo' has NaN or infinite"
                                             r"|lacks covariate values)"):
            model.predict(future_df=frame)


def test_failed_save_leaves_the_previous_model_whole(levels_model, tmp_path):
    """A save failing midway left new weights beside the old config.json."""
    path = tmp_path / "model"
    levels_model.save(path)
    before = levels_model.predict()
    other = XLSTMForecaster(**{**TINY, "random_state": 1}).fit(_levels(levels=(5.0, 6.0, 7.0)))
    other.set_params(devices=object())  # not serialisable: the save must fail
    with pytest.raises(TypeError):
        other.save(path)
    pd.testing.assert_frame_equal(XLSTMForecaster.load(path).predict(), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no staging left


def test_paths_and_datetime_ids_save_and_ids_keep_their_type(tmp_path):
    """Path in checkpoint_dir and datetime ids were 'not JSON serializable'; integer ids
    came back as strings."""
    for ids in ((1, 2, 3), tuple(pd.to_datetime(["2020-01-01", "2021-01-01", "2022-01-01"]))):
        df = _levels(ids=ids)
        model = XLSTMForecaster(**TINY, checkpoint_dir=tmp_path / f"ckpt{len(str(ids))}")
        model.fit(df).save(tmp_path / "m")
        back = XLSTMForecaster.load(tmp_path / "m")
        pd.testing.assert_frame_equal(back.predict(), model.predict())
        assert back.predict()["unique_id"].dtype == model.predict()["unique_id"].dtype


def test_one_row_per_series_uses_the_fitted_frequency(levels_model):
    """predict(df) with one row per series returned null timestamps."""
    last = _levels().groupby("unique_id").tail(1)
    forecast = levels_model.predict(df=last)
    expected = last["ds"].max() + pd.Timedelta("1h")
    assert forecast["ds"].notna().all() and forecast["ds"].min() == expected


def test_time_zones_are_kept_and_mixing_is_rejected():
    """US/Eastern input came back naive UTC; aware fit with naive predict passed."""
    df = _levels(tz="US/Eastern")
    model = XLSTMForecaster(**TINY).fit(df)
    forecast = model.predict()
    assert str(forecast["ds"].dt.tz) == "US/Eastern"
    assert forecast["ds"].min() == df["ds"].max() + pd.Timedelta("1h")
    with pytest.raises(ValueError, match="time-zone-aware times in fit but naive"):
        model.predict(df=_levels())


def test_static_features_mismatch_is_named():
    """Missing static_df gave 'mat1 and mat2 shapes cannot be multiplied'; a static_df
    given to a model without statics was ignored."""
    df = _levels()
    static = pd.DataFrame({"unique_id": ["x", "y", "z"], "size": [1.0, 2.0, 3.0]})
    model = XLSTMForecaster(**TINY).fit(df, static_df=static)
    new = _levels(ids=("w",), levels=(50.0,))
    with pytest.raises(ValueError, match="fitted with 1 static features: pass static_df"):
        model.predict(df=new)
    plain = XLSTMForecaster(**TINY).fit(df)
    with pytest.raises(ValueError, match="fitted without static features"):
        plain.predict(df=df, static_df=static)


@pytest.mark.parametrize("tamper, match", [
    (lambda c: c.update(freq=["fixed", 0]), "frequency"),
    (lambda c: c["params"].update(lookback=32), "disagree on lookback"),
    (lambda c: c.update(ids=c["ids"][:2]), "ids"),
    (lambda c: c.pop("params"), "params"),
])
def test_tampered_config_is_rejected(levels_model, tmp_path, tamper, match):
    """A zero-step frequency was accepted; tampered lookback or ids gave tensor errors."""
    levels_model.save(tmp_path / "m")
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    tamper(config)
    (tmp_path / "m" / "config.json").write_text(json.dumps(config))
    with pytest.raises(DamagedModelError, match=match):
        XLSTMForecaster.load(tmp_path / "m")


@pytest.mark.parametrize("name, damage", [
    ("weights.pt", lambda p: p.write_bytes(p.read_bytes()[:100])),
    ("history.pt", lambda p: p.write_bytes(np.random.default_rng(0).bytes(256))),
    ("stream.pt", lambda p: p.write_bytes(np.random.default_rng(1).bytes(256))),
    ("config.json", lambda p: p.write_text(p.read_text()[:50])),
])
def test_damaged_files_are_named(levels_model, tmp_path, name, damage):
    """Truncated or random files raised OSError, UnpicklingError or JSONDecodeError."""
    levels_model.save(tmp_path / "m")
    if name == "stream.pt":
        torch.save({"hidden": torch.zeros(1)}, tmp_path / "m" / name)
    damage(tmp_path / "m" / name)
    with pytest.raises(DamagedModelError, match=rf"{name}: the model directory is damaged"):
        XLSTMForecaster.load(tmp_path / "m")


def test_weights_without_covariate_scaling_load_but_other_gaps_are_damage(levels_model,
                                                                          tmp_path):
    """Models saved before covariates were standardised lack those buffers and load
    with the identity; any other missing weight names the file."""
    levels_model.save(tmp_path / "m")
    path = tmp_path / "m" / "weights.pt"
    weights = torch.load(path, weights_only=True)
    norms = ("past_norm", "future_norm", "static_norm")
    old = {k: v for k, v in weights.items() if k.split(".")[0] not in norms}
    assert len(old) == len(weights) - 6  # loc and scale of past, future and static
    torch.save(old, path)
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "m").predict(),
                                  levels_model.predict())
    torch.save({k: v for k, v in old.items() if k != "head.proj.weight"}, path)
    with pytest.raises(DamagedModelError, match=r"weights\.pt.*head\.proj\.weight"):
        XLSTMForecaster.load(tmp_path / "m")


def test_hostile_pickle_is_refused_and_not_run(levels_model, tmp_path):
    class Boom:
        def __reduce__(self):
            return (Path(tmp_path / "ran").touch, ())

    levels_model.save(tmp_path / "m")
    torch.save({"x": Boom()}, tmp_path / "m" / "history.pt")
    with pytest.raises(DamagedModelError, match=r"history\.pt"):
        XLSTMForecaster.load(tmp_path / "m")
    assert not (tmp_path / "ran").exists()


def test_fit_leaves_no_checkpoint_directory(tmp_path, monkeypatch):
    """Every fit left best.ckpt and last.ckpt in the temp folder forever."""
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    XLSTMForecaster(**TINY).fit(_levels())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("params, error, match", [
    ({"random_state": "abc"}, TypeError, "random_state must be an int"),
    ({"random_state": 1.7}, TypeError, "random_state must be an int"),
    ({"random_state": -1}, ValueError, r"random_state must be an int in \[0, 4294967295\]"),
    ({"random_state": 2**70}, ValueError, "random_state must be an int in"),
    ({"random_state": np.random.RandomState(0)}, TypeError, "random_state must be an int"),
    ({"head": "quantile", "loss": "mape"}, ValueError, "loss must be one of"),
    ({"warmup": 5.0}, ValueError, r"warmup must be a number in \[0, 1\]"),
    ({"patience": -3}, ValueError, "patience must be a non-negative int"),
    ({"gradient_clip": -1}, ValueError, "gradient_clip must be a number in"),
    ({"ema_decay": 1.0}, ValueError, "ema_decay must be a number in"),
    ({"weight_decay": -1}, ValueError, "weight_decay must be a number in"),
    ({"precision": "bogus"}, ValueError, "precision must be one of"),
    ({"learning_rate": "0.01"}, TypeError, "learning_rate must be a number"),
    ({"future_covariates": "temp"}, TypeError, r"future_covariates must be a list or tuple"),
    ({"calendar": "hour"}, TypeError, r"calendar must be a list or tuple.*\['hour'\]"),
    ({"dropout": 1.0}, ValueError, "dropout must be a number in"),
    ({"d_model": 10, "num_heads": 4}, ValueError, "divisible by num_heads"),
])
def test_bad_parameters_are_named_before_training(params, error, match):
    model = XLSTMForecaster(**{**TINY, **params})
    with pytest.raises(error, match=match):
        model.fit(_levels())
    assert not hasattr(model, "network_")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU message")
def test_gpu_accelerator_without_a_gpu_is_named():
    with pytest.raises(ValueError, match="no CUDA device is available"):
        XLSTMForecaster(**TINY, accelerator="gpu").fit(_levels())


# ------------------------------------------------------------------ CLI exit codes

AIRLINE_CONFIG = """
data:
  path: {data}
  time_col: Date
  target_col: Passengers
model:
  lookback: 24
  horizon: 6
  patch_len: 6
  patch_stride: 6
  d_model: 8
  num_heads: 2
  max_epochs: 1
  batches_per_epoch: 2
  random_state: 0
output:
  model_dir: {out}/model
  backtest: {out}/backtest.csv
"""


@pytest.fixture(scope="module")
def cli_workspace(tmp_path_factory):
    from xlstm_ts.cli import main

    root = Path(__file__).resolve().parent.parent
    tmp = tmp_path_factory.mktemp("cli_reliability")
    config = tmp / "c.yaml"
    config.write_text(AIRLINE_CONFIG.format(data=root / "datasets" / "airline.csv",
                                            out=tmp / "out"))
    assert main(["--quiet", "fit", "--config", str(config)]) == 0
    (tmp / "blocker").write_text("a file where a folder is expected")
    (tmp / "random.csv").write_bytes(os.urandom(2048))
    (tmp / "empty.csv").write_text("")
    (tmp / "list.yaml").write_text("- a\n- b\n")
    return tmp, config


def _predict(tmp, *, model=None, input_=None, output=None):
    root = Path(__file__).resolve().parent.parent
    return ["--quiet", "predict", "--model", str(model or tmp / "out" / "model"),
            "--input", str(input_ or root / "datasets" / "airline.csv"),
            "--output", str(output or tmp / "f.csv")]


@pytest.mark.parametrize("case", ["yaml_set", "list_top", "random_csv", "empty_csv",
                                  "output_parent_file", "fit_model_parent_file",
                                  "truncated_weights", "random_state_abc", "tune_zero"])
def test_cli_bad_input_exits_2(cli_workspace, case, capsys):
    """Each of these exited 1 ('unexpected'), or failed only after training."""
    from xlstm_ts.cli import main

    tmp, config = cli_workspace
    c = str(config)
    if case == "truncated_weights":
        shutil_copy = __import__("shutil").copytree
        shutil_copy(tmp / "out" / "model", tmp / "damaged", dirs_exist_ok=True)
        weights = tmp / "damaged" / "weights.pt"
        weights.write_bytes(weights.read_bytes()[:64])
    argv = {
        "yaml_set": ["validate", "--config", c, "--set", "model.lookback=["],
        "list_top": ["validate", "--config", str(tmp / "list.yaml"), "--set", "a.b=1"],
        "random_csv": _predict(tmp, input_=tmp / "random.csv")[1:],
        "empty_csv": _predict(tmp, input_=tmp / "empty.csv")[1:],
        "output_parent_file": _predict(tmp, output=tmp / "blocker" / "f.csv")[1:],
        "fit_model_parent_file": ["fit", "--config", c, "--set",
                                  f"output.model_dir={tmp / 'blocker' / 'model'}"],
        "truncated_weights": _predict(tmp, model=tmp / "damaged")[1:],
        "random_state_abc": ["validate", "--config", c, "--set", "model.random_state=abc"],
        "tune_zero": ["tune", "--config", c, "--n-trials", "0"],
    }[case]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err


def test_fit_checks_the_model_directory_before_training(cli_workspace, capsys):
    from xlstm_ts.cli import main

    tmp, config = cli_workspace
    before = {p.name for p in Path(__import__("tempfile").gettempdir()).iterdir()}
    code = main(["fit", "--config", str(config), "--set",
                 f"output.model_dir={tmp / 'blocker' / 'model'}"])
    err = capsys.readouterr().err
    assert code == 2 and "blocker is a file" in err and "Epoch" not in err
    assert {p.name for p in Path(__import__("tempfile").gettempdir()).iterdir()} <= before


# ------------------------------------------------------------------ tuning and tracking

@pytest.mark.parametrize("kwargs, match", [
    ({"n_trials": 0}, "n_trials must be a positive int"),
    ({"n_trials": -1}, "n_trials must be a positive int"),
    ({"metric": "r2"}, "metric must be one of"),
    ({"direction": "sideways"}, "direction must be one of"),
    ({"storage": "/no/such/folder/study.db"}, "the folder /no/such/folder does not exist"),
])
def test_tune_arguments_fail_before_any_trial(kwargs, match):
    from xlstm_ts.tuning import tune

    with pytest.raises(ValueError, match=match):
        tune(_levels(), {"d_model": {"type": "categorical", "choices": [8]}}, **kwargs, **TINY)


def test_tune_says_why_every_trial_failed():
    from xlstm_ts.tuning import tune

    space = {"learning_rate": {"type": "float", "low": 1e9, "high": 1e10}}
    params = {**TINY, "max_epochs": 2}
    with pytest.raises(RuntimeError, match=r"No trial .* completed .*The first failure: "):
        tune(_levels(n=80), space, n_trials=1, **params)


def test_unreachable_tracking_server_fails_within_seconds():
    import time

    from xlstm_ts.tracking import tracked_fit

    start = time.perf_counter()
    with pytest.raises(ValueError, match="not reachable"):
        tracked_fit(XLSTMForecaster(**TINY), _levels(), tracking="http://127.0.0.1:9")
    assert time.perf_counter() - start < 30


def test_models_saved_before_this_layout_still_load_and_forecast_the_same():
    """A model saved by the release before the persistence module (commit cafd2ff):
    format 1, without linear_path, id_dtype or time_zone in its config."""
    fixtures = Path(__file__).resolve().parent / "fixtures"
    model = XLSTMForecaster.load(fixtures / "model_format1_v0.1")
    expected = pd.read_csv(fixtures / "model_format1_v0.1_forecast.csv", parse_dates=["ds"])
    got = model.predict()
    np.testing.assert_allclose(got["y_pred"].to_numpy(), expected["y_pred"].to_numpy(),
                               rtol=1e-5)
    assert (got["ds"].to_numpy() == expected["ds"].to_numpy()).all()
    assert got["unique_id"].astype(str).tolist() == expected["unique_id"].astype(str).tolist()
