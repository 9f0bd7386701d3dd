"""Choosing the forecaster's learning rate by measurement (default settings otherwise).

ETTh1 as in `make demo` (7 channels, horizon 96, fit on rows < 11520 with the last
720 validating, 10 backtest windows in the test rows, standardised MSE/MAE) and a
synthetic panel with a future-known promotion covariate (effect +3), for each
learning rate, one seed each.

    python benchmarks/defaults.py     # -> benchmarks/results/defaults-cpu.md
"""

from __future__ import annotations

import time
from datetime import date

import numpy as np
from _results import write_result

from xlstm_ts import XLSTMForecaster, datasets

RATES = (1e-3, 3e-3, 1e-2)


def etth1(lr: float) -> tuple[float, float, float]:
    df = datasets.load_etth1().groupby("unique_id").head(14400).reset_index(drop=True)
    train = df.groupby("unique_id").head(11520)
    stats = train.groupby("unique_id").y.agg(["mean", "std"])
    model = XLSTMForecaster(horizon=96, val_size=720, calendar=("hour", "dayofweek"),
                            learning_rate=lr, progress_bar=False, random_state=0)
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    bt = model.backtest(df, n_windows=10, step=288)
    mean, std = bt.unique_id.map(stats["mean"]), bt.unique_id.map(stats["std"])
    err = (bt.y_pred - mean) / std - (bt.y - mean) / std
    return float(np.mean(err**2)), float(np.mean(np.abs(err))), seconds


def promo(lr: float) -> float:
    df = datasets.synthetic(4, 24 * 20, seasonalities=(24,), covariate_effect=3.0, noise=0.1,
                            seed=9)
    train = df.groupby("unique_id").head(24 * 19)
    test = df.groupby("unique_id").tail(24)
    model = XLSTMForecaster(lookback=168, horizon=24, calendar=("hour", "dayofweek"),
                            future_covariates=("x",), learning_rate=lr, progress_bar=False,
                            random_state=0).fit(train)
    joined = model.predict(future_df=test).merge(test, on=["unique_id", "ds"])
    return float(np.mean(np.abs(joined.y_pred - joined.y)))


def main() -> None:
    rows = []
    for lr in RATES:
        mse, mae, seconds = etth1(lr)
        synthetic = promo(lr)
        rows.append(f"| {lr:g} | {mse:.3f} | {mae:.3f} | {seconds:.0f} | {synthetic:.3f} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Forecaster defaults: learning rate", "",
        "Command: `python benchmarks/defaults.py`", f"Date: {date.today()}; CPU, 2 cores. "
        "Defaults otherwise (patch network, lookback 168, 20 epochs x 50 batches of 64).", "",
        "| learning rate | ETTh1 MSE | ETTh1 MAE | ETTh1 fit (s) | synthetic+covariate MAE |",
        "|---:|---:|---:|---:|---:|", *rows]) + "\n"
    write_result("defaults-cpu.md", text)


if __name__ == "__main__":
    main()
