"""Figures render to PNGs of the asked size, from pandas or polars, with intervals."""

import io

import numpy as np
import pandas as pd
import polars as pl
import pytest
from matplotlib.figure import Figure

from xlstm_ts import XLSTMForecaster, datasets
from xlstm_ts.evaluation.plotting import plot_backtest, plot_forecast, plot_training


@pytest.fixture(scope="module")
def model_and_data():
    df = datasets.synthetic(3, 24 * 12, seasonalities=(24,), seed=1)
    train = df.groupby("unique_id").head(24 * 11).reset_index(drop=True)
    test = df.groupby("unique_id").tail(24).reset_index(drop=True)
    model = XLSTMForecaster(lookback=48, horizon=24, patch_len=12, patch_stride=12, d_model=16,
                            max_epochs=2, batches_per_epoch=4, head="quantile",
                            progress_bar=False, random_state=0).fit(train)
    return model, train, test, df


def _png(fig: Figure, dpi: int = 50) -> tuple[bytes, tuple[int, int]]:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    data = buffer.getvalue()
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    return data, (width, height)


def test_forecast_plot_with_intervals_and_actuals(model_and_data):
    model, train, test, _ = model_and_data
    forecasts = model.predict()
    fig = plot_forecast(train, forecasts, actuals=test, figsize=(8, 6))
    data, size = _png(fig)
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and size == (400, 300)
    axes = fig.axes
    assert len(axes) == 3  # one panel per series
    assert len(axes[0].collections) == 1  # the q0.1-q0.9 band
    labels = axes[0].get_legend_handles_labels()[1]
    assert labels == ["history", "actual", "q0.1-q0.9", "forecast"]
    # polars frames give the same picture
    fig_pl = plot_forecast(pl.from_pandas(train), pl.from_pandas(forecasts), ids=["s1"])
    assert len(fig_pl.axes) == 1 and fig_pl.axes[0].get_title(loc="left") == "s1"
    # issue 49, item 12: a notebook shows the figure as an image (it showed "<Figure ...>")
    assert fig_pl._repr_png_()[:8] == b"\x89PNG\r\n\x1a\n"


def test_forecast_plot_draws_conformal_bands(model_and_data):
    model, train, _, _ = model_and_data
    model.conformalize(train, n_windows=2)
    forecasts = model.predict(level=(80, 95))
    fig = plot_forecast(train, forecasts, ids=["s0"])
    assert len(fig.axes[0].collections) == 3  # one quantile band, two conformal bands


def test_backtest_and_training_plots(model_and_data):
    model, _, _, df = model_and_data
    backtest = model.backtest(df, n_windows=2)
    fig = plot_backtest(backtest, figsize=(6, 3))
    assert _png(fig)[1] == (300, 150)
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].patches) == 2  # 2 cutoffs
    fig = plot_training(model)
    assert len(fig.axes[0].lines) == 2  # train and validation loss
    assert len(model.loss_history_["epoch"]) == model.epochs_trained_ >= 1


def test_plots_reject_bad_input(model_and_data):
    model, train, _, _ = model_and_data
    with pytest.raises(ValueError, match="forecasts lacks the columns \\['y_pred'\\]"):
        plot_forecast(train, train)
    with pytest.raises(ValueError, match="'nope' is not in forecasts"):
        plot_forecast(train, model.predict(), ids=["nope"])
    with pytest.raises(ValueError, match="fitted forecaster or its loss_history_"):
        plot_training({"epoch": []})
    with pytest.raises(ValueError, match="backtest lacks the columns"):
        plot_backtest(pd.DataFrame({"y": [1.0]}))
    assert np.isfinite(model.predict()["y_pred"]).all()
