"""A plain fit on raw-unit data never crashes (issue 49, item 0).

On 7 hourly channels in raw units, ``fit`` failed in the linear start with "stack
expects a non-empty TensorList": a channel at exactly 0 for a whole window has the
smallest positive std, its normalised target overflowed float32, and every solved
candidate map went NaN; NaN errors then sorted anywhere and the tie rule kept none.
Values around 1e30 failed the same way (their variance, cast back to float32, was inf).
"""

import logging
import math

import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster
from xlstm_ts.models.revin import RevIN
from xlstm_ts.training.linear_start import best_candidates

HORIZON = 24
SMALL = {"horizon": HORIZON, "d_model": 8, "num_heads": 2, "max_epochs": 1,
         "batches_per_epoch": 2, "batch_size": 16, "progress_bar": False, "random_state": 0}


def _raw_channels(n: int, scale: float = 1.0, zero_stretches: bool = True) -> pd.DataFrame:
    """7 hourly channels at raw levels -2 to 47 and spreads 3 to 17 (a daily cycle, a
    random-walk level, noise); channel c5 is switched off (exactly 0) for 200-step
    stretches, longer than the lookback."""
    rng = np.random.default_rng(0)
    t = np.arange(n)
    times = pd.date_range("2021-01-01", periods=n, freq="h")
    frames = []
    for c, (level, spread) in enumerate(zip((47, 12, 40, 9, 3, -2, 26), (17, 5, 15, 4, 3, 3, 10),
                                            strict=True)):
        y = level + spread * (0.8 * np.sin(2 * np.pi * t / 24 + c)
                              + 0.1 * np.cumsum(rng.normal(size=n)) / math.sqrt(n / 10)
                              + 0.2 * rng.normal(size=n))
        if c == 5 and zero_stretches:
            for start in (300, 1000, n - 260):  # the last in the validation windows
                y[start:start + 200] = 0.0
        frames.append(pd.DataFrame({"unique_id": f"c{c}", "ds": times, "y": y * scale}))
    return pd.concat(frames, ignore_index=True)


def _errors_against_naive(df: pd.DataFrame, caplog) -> tuple[float, float]:
    """Fit on all but the last horizon; MAE of the forecast and of the last value
    repeated over that horizon, both over every channel."""
    last = df.groupby("unique_id")["ds"].transform("max")
    cut = last - pd.Timedelta(hours=HORIZON)
    train, test = df[df["ds"] <= cut], df[df["ds"] > cut]
    with caplog.at_level(logging.INFO, logger="xlstm_ts"):
        forecast = XLSTMForecaster(**SMALL).fit(train).predict()
    assert "linear start:" in caplog.text
    assert "falling back" not in caplog.text
    assert np.isfinite(forecast["y_pred"]).all()
    joined = test.merge(forecast, on=["unique_id", "ds"], validate="one_to_one")
    assert len(joined) == 7 * HORIZON
    naive = joined["unique_id"].map(train.groupby("unique_id")["y"].last())
    return (float((joined["y"] - joined["y_pred"]).abs().mean()),
            float((joined["y"] - naive).abs().mean()))


def test_raw_units_with_switched_off_channel_fit_and_beat_naive(caplog):
    model_mae, naive_mae = _errors_against_naive(_raw_channels(1500), caplog)
    assert model_mae < 0.7 * naive_mae


def test_values_near_1e30_fit_and_forecast_at_their_scale(caplog):
    model_mae, naive_mae = _errors_against_naive(
        _raw_channels(1500, scale=1e29, zero_stretches=False), caplog)
    assert model_mae < 0.7 * naive_mae


def test_nan_candidates_are_never_chosen():
    errors = {"zero, penalty 1": float("nan"), "naive": 2.0, "drift": 2.01,
              "naive, penalty 1": float("inf"), "seasonal24": 2.5}
    assert best_candidates(errors) == ["naive", "drift"]
    assert best_candidates({"a": float("nan"), "b": float("nan")}) == []


@pytest.mark.parametrize("level", [1e30, -3e30])
def test_revin_std_of_huge_values_is_finite(level):
    x = torch.full((2, 48, 1), level) * (1 + 0.01 * torch.randn(2, 48, 1))
    mean, std = RevIN().statistics(x)
    assert torch.isfinite(std).all() and torch.isfinite(mean).all()
    expected = x.double().std(dim=1, unbiased=False, keepdim=True)
    torch.testing.assert_close(std.double(), expected, rtol=1e-4, atol=0)


def test_no_finite_candidate_falls_back_to_the_plain_ridge_and_says_so(monkeypatch, caplog):
    from xlstm_ts.training import linear_start

    monkeypatch.setattr(linear_start, "validation_errors",
                        lambda net, val, per_series, solutions, seed=0:
                        dict.fromkeys(solutions, float("nan")))
    df = _raw_channels(600, zero_stretches=False)
    with caplog.at_level(logging.INFO, logger="xlstm_ts"):
        forecast = XLSTMForecaster(**SMALL).fit(df).predict()
    assert "falling back to 'zero, penalty 0.001'" in caplog.text
    assert "linear start: zero, penalty 0.001" in caplog.text
    assert np.isfinite(forecast["y_pred"]).all()
