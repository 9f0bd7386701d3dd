"""`make demo`: the forecaster on ETTh1, backtested against seasonal naive.

All 7 ETTh1 channels as series (hourly), horizon 96, standard ETT borders: fit
on rows [0, 11520) (the last 720 for validation and early stopping), then 10
rolling forecasts inside the test rows [11520, 14400). Errors are reported on
values standardised with train-only statistics, as in the ETT literature, per
horizon bucket, beside the seasonal-naive baseline (same hours of the last day).
Forecasts go to ``outputs/forecasts.csv``; plots (forecast from the last cutoff,
errors by horizon and cutoff, training curve) to ``outputs/*.png``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from . import XLSTMForecaster, datasets
from ._io import atomic_write
from .evaluation.plotting import plot_backtest, plot_forecast, plot_training

HORIZON, TRAIN_END, TEST_END, WINDOWS, STEP = 96, 11520, 14400, 10, 288
OUT = Path("outputs")


def _seasonal_naive(history: pd.DataFrame, forecast: pd.DataFrame) -> pd.Series:
    """Value 24 h before each forecast step, taken from the history (repeating the last day)."""
    last_day = history.groupby("unique_id").tail(24)
    last_day = last_day.assign(hour=last_day.ds.dt.hour)[["unique_id", "hour", "y"]]
    merged = forecast.assign(hour=forecast.ds.dt.hour).merge(last_day, on=["unique_id", "hour"],
                                                            suffixes=("", "_naive"))
    return merged.set_index(forecast.index)["y_naive"]


def main() -> None:
    """Run the demo: fit, backtest, print the error table, write outputs/."""
    df = datasets.load_etth1()
    df = df.groupby("unique_id").head(TEST_END).reset_index(drop=True)
    train = df.groupby("unique_id").head(TRAIN_END)
    stats = train.groupby("unique_id").y.agg(["mean", "std"])

    model = XLSTMForecaster(horizon=HORIZON, head="quantile", quantiles=(0.1, 0.5, 0.9),
                            val_size=720, calendar=("hour", "dayofweek"), random_state=0)
    start = time.perf_counter()
    model.fit(train)
    fit_s = time.perf_counter() - start
    print(f"fit: {fit_s:.0f} s, {model.epochs_trained_} epochs, "
          f"val_loss {model.history_.get('val_loss', float('nan')):.4f}")

    start = time.perf_counter()
    backtest = model.backtest(df, n_windows=WINDOWS, step=STEP, level=(80, 95))
    print(f"backtest: {WINDOWS} windows x 7 series in {time.perf_counter() - start:.0f} s")

    pieces = []
    for cutoff, fc in backtest.groupby("cutoff"):
        history = df[df.ds <= cutoff]
        pieces.append(fc.assign(y_naive=_seasonal_naive(history, fc)))
    result = pd.concat(pieces)
    result["step"] = result.groupby(["unique_id", "cutoff"]).cumcount() + 1
    scale = result.unique_id.map(stats["std"])
    for col in ("y", "y_pred", "y_naive"):
        result[f"{col}_std"] = (result[col] - result.unique_id.map(stats["mean"])) / scale

    print("\nStandardised errors (train-only statistics), 7 channels x 10 windows:")
    print(f"{'steps':>9} | {'xLSTM MSE':>9} {'MAE':>6} | {'seasonal naive MSE':>18} {'MAE':>6}")
    for lo in range(1, HORIZON + 1, 24):
        part = result[(result.step >= lo) & (result.step < lo + 24)]
        err = part.y_pred_std - part.y_std
        naive = part.y_naive_std - part.y_std
        print(f"{lo:>4}-{lo + 23:<4} | {np.mean(err**2):9.3f} {np.mean(np.abs(err)):6.3f} | "
              f"{np.mean(naive**2):18.3f} {np.mean(np.abs(naive)):6.3f}")
    err, naive = result.y_pred_std - result.y_std, result.y_naive_std - result.y_std
    print(f"{'all':>9} | {np.mean(err**2):9.3f} {np.mean(np.abs(err)):6.3f} | "
          f"{np.mean(naive**2):18.3f} {np.mean(np.abs(naive)):6.3f}")
    for level in (80, 95):  # bands calibrated on the fit's validation windows
        low, high = result[f"y_pred_lo{level}"], result[f"y_pred_hi{level}"]
        inside = (result.y >= low) & (result.y <= high)
        print(f"{level}% band coverage: {inside.mean():.1%}")
    head = (result.y >= result["y_pred_q0.1"]) & (result.y <= result["y_pred_q0.9"])
    print(f"(the quantile head's own q0.1-q0.9 band: {head.mean():.1%})")

    OUT.mkdir(exist_ok=True)
    table = result.drop(columns=[c for c in result.columns if c.endswith("_std")])
    atomic_write(OUT / "forecasts.csv", lambda tmp: table.to_csv(tmp, index=False))
    last = result[result.cutoff == result.cutoff.max()]
    figures = {
        "forecast.png": plot_forecast(df[df.ds <= last.cutoff.max()], last, actuals=df,
                                      ids=["OT", "HUFL"], context=7 * 24),
        "backtest.png": plot_backtest(result),
        "training.png": plot_training(model),
    }
    for name, figure in figures.items():
        atomic_write(OUT / name, lambda tmp, fig=figure: fig.savefig(tmp, dpi=100, format="png"))
    print(f"\nwrote {OUT / 'forecasts.csv'} and {', '.join(str(OUT / n) for n in figures)}")


if __name__ == "__main__":
    main()
