"""The defaults on data with nothing to learn: random walks, where the naive forecast
(the last value repeated) is the best there is.

Exchange rates behave so, and a forecaster that fits noise there loses to the naive
forecast. Eight daily random walks (log-price steps from a Student-t with 4 degrees
of freedom, 0.5% scale) of 7,588 steps, the length of the exchange-rate benchmark;
the forecaster (only ``horizon`` given) is fitted on the first 80% and scored with
the naive forecast on windows whose horizon lies in the rest (every ``--stride``
steps), MSE in units of each series' training standard deviation.

    python benchmarks/random_walk.py    # -> benchmarks/results/random-walk-cpu.md
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import date

import numpy as np
import pandas as pd
import torch
from _results import write_result

STEPS, SERIES = 7588, 8


def walks(seed: int) -> np.ndarray:
    """(STEPS, SERIES) price paths."""
    rng = np.random.default_rng(seed)
    steps = rng.standard_t(4, size=(STEPS, SERIES)) * 0.005
    return np.exp(np.cumsum(steps, axis=0)) * rng.uniform(0.5, 2.0, SERIES)


def run(horizon: int, seed: int, stride: int) -> dict:
    from xlstm_ts import XLSTMForecaster

    levels = walks(seed)
    ids = [f"s{i}" for i in range(SERIES)]
    frame = pd.DataFrame({"unique_id": np.repeat(ids, STEPS),
                          "ds": np.tile(pd.date_range("1990-01-01", periods=STEPS, freq="D"),
                                        SERIES),
                          "y": levels.T.ravel()})
    position = frame.groupby("unique_id").cumcount()
    n_fit = int(0.8 * STEPS)
    start = time.perf_counter()
    model = XLSTMForecaster(horizon=horizon, random_state=seed, progress_bar=False)
    model.fit(frame[position < n_fit])
    seconds = time.perf_counter() - start
    scale = levels[:n_fit].std(axis=0)
    ours, naive = [], []
    for t in range(n_fit, STEPS - horizon + 1, stride):
        forecast = model.predict(df=frame[position < t]).pivot(
            index="ds", columns="unique_id", values="y_pred")[ids].to_numpy()
        actual = levels[t:t + horizon]
        ours.append((((forecast - actual) / scale) ** 2).mean())
        naive.append((((levels[t - 1] - actual) / scale) ** 2).mean())
    return {"horizon": horizon, "seed": seed, "windows": len(ours), "mse": float(np.mean(ours)),
            "naive": float(np.mean(naive)), "lookback": model.config_.lookback,
            "kept": model.correction_share_, "fit_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--horizons", type=int, nargs="+", default=[96])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--stride", type=int, default=48)
    args = parser.parse_args()
    rows = [run(h, s, args.stride) for h in args.horizons for s in args.seeds]
    lines = ["# Defaults on random walks (nothing to learn)", "",
             f"Command: `python benchmarks/random_walk.py` (horizons {args.horizons}, seeds "
             f"{args.seeds}, stride {args.stride}). Date: {date.today()}; {os.cpu_count()} "
             f"cores, CPU, torch {torch.__version__}. {SERIES} daily random walks of {STEPS} "
             "steps, fitted on the first 80% with only `horizon` given; MSE over the test "
             "windows in training standard deviations. `kept`: the trained network's share "
             "against its linear start.", "",
             "| horizon | seed | lookback | windows | MSE | naive | ratio | kept | fit s |",
             "|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        lines.append(f"| {r['horizon']} | {r['seed']} | {r['lookback']} | {r['windows']} | "
                     f"{r['mse']:.5f} | {r['naive']:.5f} | {r['mse'] / r['naive']:.3f} | "
                     f"{', '.join(f'{k:g}' for k in r['kept'])} | {r['fit_seconds']:.0f} |")
    write_result("random-walk-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
