"""The everyday path (issue 18): messages that name a fix, outputs anyone may read."""

import os
import stat
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from xlstm_ts import XLSTMForecaster
from xlstm_ts.config import ConfigError, parse_config
from xlstm_ts.evaluation.baselines import SeasonalNaive


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


ROOT = Path(__file__).resolve().parent.parent


def test_cli_forecasts_with_future_covariates_from_the_shipped_config(tmp_path, monkeypatch):
    """Item 1: a model with a holiday covariate could not forecast from the CLI. The
    shipped store-sales config fits, then predicts with its predict.future file, run from
    a working directory that is not the repository (paths are relative to the config)."""
    import polars as pl

    from xlstm_ts.cli import main

    monkeypatch.chdir(tmp_path)
    config = str(ROOT / "configs" / "store_sales.yaml")
    out = {"output.model_dir": tmp_path / "model", "output.forecasts": tmp_path / "f.csv",
           "predict.model": tmp_path / "model"}
    sets = [x for k, v in out.items() for x in ("--set", f"{k}={v}")]
    assert main(["--quiet", "fit", "--config", config, "--set", "model.max_epochs=1",
                 "--set", "model.d_model=16", *sets]) == 0
    assert main(["--quiet", "predict", "--config", config, *sets]) == 0
    forecasts = pl.read_csv(tmp_path / "f.csv", try_parse_dates=True)
    assert forecasts.shape[0] == 3 * 14 and forecasts["y_pred"].is_finite().all()
    assert str(forecasts["date"].min()).startswith("2025-01-01")
    # round two, item 5: dates in, dates out (a plain predict wrote 2025-01-01T00:00:00.000000)
    first = (tmp_path / "f.csv").read_text().splitlines()[1].split(",")
    assert first[1] == "2025-01-01" and first[-2] == "2024-12-31"  # the date and the cutoff
    # the same model without the future file: exit 2, and the message names the flag
    assert main(["--quiet", "predict", "--model", str(tmp_path / "model"), "--input",
                 str(ROOT / "datasets" / "store_sales.csv"), "--output",
                 str(tmp_path / "g.csv")]) == 2
    assert not (tmp_path / "g.csv").exists()


def test_missing_future_file_message_names_the_cli_flag(tmp_path, capsys):
    from xlstm_ts.cli import main

    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=80, freq="D")
    frame = pd.DataFrame({"ds": times, "y": 10 + rng.standard_normal(80),
                          "promo": (np.arange(80) % 7 == 0).astype(float)})
    frame.to_csv(tmp_path / "d.csv", index=False)
    XLSTMForecaster(lookback=14, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                    future_covariates=("promo",), batches_per_epoch=2,
                    progress_bar=False).fit(frame).save(tmp_path / "model")
    args = ["predict", "--model", str(tmp_path / "model"), "--input", str(tmp_path / "d.csv"),
            "--output", str(tmp_path / "f.csv")]
    assert main(args) == 2
    assert "pass --future FILE" in capsys.readouterr().err
    future = pd.DataFrame({"ds": pd.date_range("2024-03-21", periods=3, freq="D"),
                           "promo": 0.0})
    future.to_csv(tmp_path / "short.csv", index=False)  # 3 of the 7 steps
    assert main([*args, "--future", str(tmp_path / "short.csv")]) == 2
    assert f"--future file {tmp_path / 'short.csv'} lacks covariate values" in \
        capsys.readouterr().err


def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    from xlstm_ts.config import load_config

    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "job.yaml").write_text(
        "data:\n  path: ../data/sales.csv\npredict:\n  model: models:/sales/3\n"
        "  future: future.csv\noutput:\n  forecasts: /srv/out.csv\n")
    monkeypatch.chdir(tmp_path / "jobs")  # any working directory gives the same paths
    config = load_config(tmp_path / "jobs" / "job.yaml")
    assert Path(config.data.path) == tmp_path / "jobs" / ".." / "data" / "sales.csv"
    assert Path(config.predict.future) == tmp_path / "jobs" / "future.csv"
    assert config.predict.model == "models:/sales/3" and config.output.forecasts == "/srv/out.csv"
    assert Path(config.output.model_dir) == tmp_path / "jobs" / "outputs" / "model"


def _gappy_stores(n_days: int = 120):
    """Two daily stores, a weekly cycle, a promo covariate, different days missing."""
    rng = np.random.default_rng(1)
    days = pd.date_range("2024-01-01", periods=n_days, freq="D")
    frames = []
    for store, lost in (("a", [50, 51, 52, 100]), ("b", [70, 108])):
        promo = (np.arange(n_days) % 10 == 0).astype(float)
        y = 20 + 5 * np.sin(2 * np.pi * np.arange(n_days) / 7) + 8 * promo
        frame = pd.DataFrame({"store": store, "day": days, "sales": y + rng.normal(0, 0.3, n_days),
                              "promo": promo})
        frames.append(frame.drop(index=lost))
    return pd.concat(frames, ignore_index=True)


def test_backtest_cutoffs_lie_on_one_time_grid_despite_gaps():
    """Item 2: windows were counted in rows, so a gap shifted one series' cutoffs and a
    future covariate failed on the missing days."""
    df = _gappy_stores()
    model = XLSTMForecaster(lookback=21, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, id_col="store", time_col="day",
                            target_col="sales", future_covariates=("promo",),
                            fill_missing="nan", progress_bar=False, random_state=0)
    result = model.backtest(df, n_windows=3, step=7, baseline="seasonal_naive")
    cutoffs = result.groupby("store")["cutoff"].unique()
    assert [list(c) for c in cutoffs] == [list(pd.to_datetime(
        ["2024-04-08", "2024-04-15", "2024-04-22"]))] * 2
    assert len(result) == 2 * 3 * 7
    spans = result.groupby(["store", "cutoff"])["day"].agg(["min", "max"])
    assert ((spans["max"] - spans["min"]) == pd.Timedelta(days=6)).all()
    # the days missing from the data are forecast, with no actual (store a, day 100)
    lost = result[(result.store == "a") & (result.day == pd.Timestamp("2024-04-10"))]
    assert len(lost) == 1 and lost.sales.isna().all() and np.isfinite(lost.y_pred).all()
    assert result.sales.isna().sum() == 2  # a's day 100, b's day 108
    # item 7: the seasonal-naive baseline beside it, from the same history (a week of
    # daily data; a missing day repeats the day before it)
    for (store, cutoff), window in result.groupby(["store", "cutoff"]):
        days = pd.date_range(cutoff - pd.Timedelta(days=7), cutoff, freq="D")[1:]
        week = df[df.store == store].set_index("day")["sales"].reindex(days).ffill()
        np.testing.assert_allclose(window["seasonal_naive"], week.to_numpy())
    with pytest.raises(ValueError, match="baseline must be None, 'naive' or 'seasonal_naive'"):
        model.backtest(df, baseline="ets")


def test_seasonal_naive_takes_the_gap_rule():
    """Item 7: SeasonalNaive failed on gaps and pointed to fill_missing, which it did
    not accept."""
    df = pd.DataFrame({"unique_id": "a", "ds": pd.to_datetime(
        ["2024-01-01", "2024-01-02", "2024-01-04", "2024-01-05"]), "y": [1.0, 2.0, 4.0, 5.0]})
    with pytest.raises(ValueError, match="fill_missing"):
        SeasonalNaive(2).fit(df)
    nan = SeasonalNaive(3, fill_missing="nan").fit(df).predict(3)
    assert nan["y_pred"].tolist() == [2.0, 4.0, 5.0]  # Jan 3 missing: Jan 2's value
    zero = SeasonalNaive(3, fill_missing="zero").fit(df).predict(3)
    assert zero["y_pred"].tolist() == [0.0, 4.0, 5.0]


def test_evaluating_on_training_data_warns_and_backtest_leaves_the_estimator_unfitted():
    """Item 3: fit(df) then backtest(df) scored the model on its own training windows."""
    from xlstm_ts.evaluation import InSampleWarning

    df = _gappy_stores().drop(columns="promo")
    params = dict(lookback=21, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                  batches_per_epoch=2, id_col="store", time_col="day", target_col="sales",
                  fill_missing="nan", progress_bar=False, random_state=0)
    fresh = XLSTMForecaster(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", InSampleWarning)  # honest: fitted before the cutoffs
        fresh.backtest(df, n_windows=2)
    assert not hasattr(fresh, "network_")
    fitted = XLSTMForecaster(**params).fit(df)
    with pytest.warns(InSampleWarning, match=r"27 of the 27 actuals scored lie inside"):
        fitted.backtest(df, n_windows=2)
    with pytest.warns(InSampleWarning):
        fitted.conformalize(df, n_windows=2)
    with pytest.warns(InSampleWarning):
        fitted.score(df)
    early = XLSTMForecaster(**params).fit(df[df.day < "2024-04-23"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", InSampleWarning)
        early.conformalize(df, n_windows=1)  # the last 7 days lie after its training span


def test_score_follows_scikit_learn_higher_is_better():
    """Item 9: score() returned the error, so an sklearn search picked the worst model."""
    from xlstm_ts.evaluation import evaluate, forecast_error

    df = _gappy_stores().drop(columns="promo")
    train = df[df.day < "2024-04-23"]
    model = XLSTMForecaster(lookback=21, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, id_col="store", time_col="day",
                            target_col="sales", fill_missing="nan", progress_bar=False,
                            random_state=0).fit(train)
    forecasts = model.predict(df=train).merge(df, on=["store", "day"])
    mae = evaluate(forecasts, metrics=("mae",), id_col="store", target_col="sales")["mae"]
    assert model.score(df) == pytest.approx(-mae) and mae > 0
    assert forecast_error(model, df, "mse") == pytest.approx(-model.score(df, "mse"))


def test_cli_logs_one_line_per_epoch_and_a_summary_without_chatter(tmp_path):
    """Item 4: fit logged no losses, backtest no errors, and every Lightning line came
    twice with tips and deprecation warnings. Run as cron would: a pipe, not a terminal."""
    import subprocess
    import sys

    sets = ["--set", "model.max_epochs=2", "--set", f"output.model_dir={tmp_path / 'm'}",
            "--set", f"output.backtest={tmp_path / 'b.csv'}", "--set", "backtest.n_windows=2"]
    config = str(ROOT / "configs" / "airline.yaml")
    for command in ("fit", "backtest"):
        done = subprocess.run([sys.executable, "-m", "xlstm_ts", command, "--config", config,
                               *sets], capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        epochs = [line for line in lines if line.startswith("INFO epoch ")]
        assert epochs and all("train_loss" in line and "val_loss" in line for line in epochs)
        assert len(lines) == len(set(lines)), lines  # nothing printed twice
        for chatter in ("Tip", "GPU available", "deprecated", "Warning", "%|"):
            assert chatter not in done.stderr, chatter
        summary = lines[-1]
        if command == "fit":
            assert [line.split("/")[0] for line in epochs] == ["INFO epoch 1", "INFO epoch 2"]
            assert "model saved to" in summary and "best val_loss" in summary
        else:
            assert "backtest: 2 windows, MAE" in summary and "MSE" in summary


def test_common_options_work_after_the_command_and_messages_name_real_fixes(tmp_path):
    """Item 6: `predict --quiet` was rejected; the short-series message named a
    min_length='drop' option that exists nowhere a user can reach."""
    from xlstm_ts.cli import build_parser

    parser = build_parser()
    assert parser.parse_args(["predict", "--quiet", "--model", "m"]).quiet
    assert parser.parse_args(["--quiet", "predict", "--model", "m"]).quiet  # not undone
    assert parser.parse_args(["fit", "--config", "c", "--log-level", "DEBUG"]).log_level == \
        "DEBUG"
    short = pd.DataFrame({"unique_id": ["a"] * 30 + ["b"] * 200,
                          "ds": list(pd.date_range("2024-01-01", periods=30, freq="h"))
                          + list(pd.date_range("2024-01-01", periods=200, freq="h")),
                          "y": np.arange(230.0)})
    with pytest.raises(ValueError, match=r"shorter than .* Lower lookback, horizon or "
                                         r"val_size") as err:
        XLSTMForecaster(lookback=96, horizon=24, max_epochs=1).fit(short)
    assert "min_length" not in str(err.value)


def test_level_bands_come_from_the_quantile_head_until_conformalized():
    """Item 9: predict(level=...) failed on a quantile head whose quantiles already form
    the band; with intervals="head" they serve it, and conformal calibration takes over
    once run."""
    df = _gappy_stores().drop(columns="promo")
    model = XLSTMForecaster(lookback=21, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, id_col="store", time_col="day",
                            target_col="sales", fill_missing="nan", head="quantile",
                            quantiles=(0.1, 0.5, 0.9), intervals="head", progress_bar=False,
                            random_state=0).fit(df[df.day < "2024-04-23"])
    out = model.predict(level=(80,))
    np.testing.assert_array_equal(out["y_pred_lo80"], out["y_pred_q0.1"])
    np.testing.assert_array_equal(out["y_pred_hi80"], out["y_pred_q0.9"])
    with pytest.raises(ValueError, match=r"level=95 needs the quantiles 0.025 and 0.975"):
        model.predict(level=(95,))
    model.conformalize(df, n_windows=1)
    out = model.predict(level=(80, 95))
    assert (out["y_pred_lo95"] <= out["y_pred_lo80"]).all()
    assert (out["y_pred_hi80"] <= out["y_pred_hi95"]).all()
    assert not np.allclose(out["y_pred_hi80"], out["y_pred_q0.9"])


def test_polars_dates_come_back_as_dates(tmp_path):
    import polars as pl

    from xlstm_ts.evaluation.baselines import SeasonalNaive

    days = pl.date_range(pl.date(2024, 1, 1), pl.date(2024, 3, 31), "1d", eager=True)
    y = np.sin(np.arange(len(days)) * 2 * np.pi / 7) + 5.0
    df = pl.DataFrame({"unique_id": "a", "ds": days, "y": y})
    model = XLSTMForecaster(horizon=7, lookback=14, max_epochs=1, batches_per_epoch=2,
                            d_model=8, progress_bar=False).fit(df)
    forecast = model.predict()
    assert forecast["ds"].dtype == pl.Date
    assert str(forecast["ds"][0]) == "2024-04-01"
    model.save(tmp_path / "m")
    assert XLSTMForecaster.load(tmp_path / "m").predict()["ds"].dtype == pl.Date
    assert SeasonalNaive(7).fit(df).predict(3)["ds"].dtype == pl.Date
    # datetimes stay datetimes
    as_datetimes = df.with_columns(pl.col("ds").cast(pl.Datetime("us")))
    assert model.predict(as_datetimes)["ds"].dtype == pl.Datetime("us")


def test_python_fit_prints_no_lightning_chatter_and_restores_its_loggers(caplog):
    import logging

    from xlstm_ts import datasets

    lightning_logger = logging.getLogger("lightning.pytorch")
    before = lightning_logger.level
    df = datasets.load_airline()
    caplog.set_level(logging.INFO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        XLSTMForecaster(horizon=6, lookback=24, max_epochs=2, progress_bar=False).fit(df)
    chatter = [r.getMessage() for r in caplog.records if r.name.startswith("lightning")]
    assert chatter == []
    assert not [w for w in caught if "LeafSpec" in str(w.message)]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("xlstm_ts")]
    assert any("epoch 2/2" in line for line in ours)  # our own lines still come
    assert lightning_logger.level == before


def test_business_day_series_forecast_weekdays_through_update_and_save(tmp_path):
    """Stock-like data (no weekends) fits without fill_missing, forecasts the next
    weekdays, streams a Monday after a Friday and keeps its frequency when loaded."""
    ds = pd.bdate_range("2024-01-01", periods=120)  # ends on a Friday
    y = np.sin(2 * np.pi * np.arange(120) / 5)
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": y})
    model = XLSTMForecaster(lookback=14, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, progress_bar=False).fit(df)
    assert str(model.freq_) == "1bd"
    expected = pd.bdate_range(ds[-1], periods=8)[1:]
    assert list(model.predict().ds) == list(expected)
    model.update(pd.DataFrame({"unique_id": ["s"], "ds": [expected[0]], "y": [0.0]}))
    assert list(model.predict().ds) == list(pd.bdate_range(expected[0], periods=8)[1:])
    model.save(tmp_path / "m")
    loaded = XLSTMForecaster.load(tmp_path / "m")
    assert loaded.freq_ == model.freq_
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())


def test_every_config_error_is_reported_in_one_run():
    """Three typos took three runs to find (issue 49, item 13)."""
    with pytest.raises(ConfigError) as caught:
        parse_config({"data": {"path": "x.csv", "time_cl": "ds"},
                      "model": {"max_epoch": 3, "horizon": -1}, "trackin": {}})
    lines = str(caught.value).splitlines()
    assert len(lines) == 4
    assert any(line.startswith("trackin: unknown section") for line in lines)
    assert any("data.time_cl: unknown key. Did you mean 'time_col'?" in line for line in lines)
    assert any("model.max_epoch: unknown key. Did you mean 'max_epochs'?" in line
               for line in lines)
    assert any(line.startswith("model.horizon:") for line in lines)


@pytest.mark.parametrize("fill", ["nan", "ffill"])
def test_update_takes_a_gap_since_the_last_step_by_the_gap_rule(fill):
    """Round two, item 6: update() rejected a missing day with a hint to use
    fill_missing, which the model already had; update(full history, skip_seen=True)
    accepted the same gap. Both now absorb it the same way."""
    df = _gappy_stores()
    day = pd.Timestamp("2024-03-31")
    fitted = XLSTMForecaster(lookback=21, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                             batches_per_epoch=2, id_col="store", time_col="day",
                             target_col="sales", past_covariates=("promo",),
                             fill_missing=fill, progress_bar=False,
                             random_state=0).fit(df[df.day <= day])
    later = df[(df.day > day + pd.Timedelta(days=2)) & (df.day <= day + pd.Timedelta(days=9))]
    gap = pickle_copy(fitted).update(later)  # April 1 and 2 are missing in both stores
    whole = pickle_copy(fitted).update(df[df.day <= later.day.max()].pipe(
        lambda f: f[(f.day <= day) | (f.day > day + pd.Timedelta(days=2))]), skip_seen=True)
    pd.testing.assert_frame_equal(gap.predict(), whole.predict())
    assert gap.data_.lengths.tolist() == whole.data_.lengths.tolist()
    if fill == "nan":  # the inserted days are kept out of the loss, as inside the data
        assert (~gap.data_.observed).sum() >= 4
    with pytest.raises(ValueError, match="at or before the last time already absorbed"):
        pickle_copy(fitted).update(df[(df.day > day - pd.Timedelta(days=1))
                                      & (df.day <= day + pd.Timedelta(days=5))])


def pickle_copy(model):
    import copy

    return copy.deepcopy(model)


def test_a_polars_backtest_of_dates_returns_dates():
    """Round two, item 5: a polars backtest returned Datetime for Date input, so joins
    back to the input failed."""
    import polars as pl

    df = pl.from_pandas(_gappy_stores().drop(columns="promo")).with_columns(
        pl.col("day").cast(pl.Date)).filter(pl.col("store") == "b")
    model = XLSTMForecaster(lookback=14, horizon=7, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, id_col="store", time_col="day",
                            target_col="sales", fill_missing="nan", progress_bar=False,
                            random_state=0)
    result = model.backtest(df, n_windows=2)
    assert result["day"].dtype == pl.Date and result["cutoff"].dtype == pl.Date
    joined = result.join(df, on=["store", "day"], how="inner", suffix="_input")
    assert joined.height == result["sales"].is_not_null().sum() == 13  # day 108 is missing
