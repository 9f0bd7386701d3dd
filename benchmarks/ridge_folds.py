"""The ridge floor on ETT's time folds: which lookback, and whether the window's level
should enter the linear map, asked of more than one validation period.

Each fold ``a,b`` (hours) fits a ridge map from the normalised lookback to the
normalised horizon on the windows whose targets end before hour ``a`` and scores the
windows whose targets lie in ``[a, b)``; channels independent, the data scaled by the
protocol's training rows (hours < 8,640), errors weighted into each series'
standardised units (as the forecaster's linear start), the penalty the best of a
grid on the fold. Variants: ``revin`` (the window minus its mean, over its standard
deviation: the forecaster's linear start), ``revin+level`` (also the window's mean and
scale as features, so the map can pull towards the series' training level), ``raw``
(no normalisation, as DLinear). Numpy only; one line per fold, lookback, horizon and
variant. Rows of 2026-12-05 are in ``results/accuracy-explore.jsonl``.

    python benchmarks/ridge_folds.py ETTm1 --lookbacks 512 1024 --horizons 96 720 \
        --folds 2880,5760 5760,8640 8640,11520 --variants revin
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from accuracy import ett_path

PENALTIES = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)  # times 1e-3 of the summed weights


def _windows(z: np.ndarray, lookback: int, horizon: int, lo: int, hi: int):
    """Inputs (n, L) and targets (n, H) of every channel's windows with targets in
    rows ``[lo, hi)``."""
    starts = np.arange(max(lo - lookback, 0), hi - lookback - horizon + 1)
    w = z[starts[:, None] + np.arange(lookback + horizon)].transpose(0, 2, 1)
    w = w.reshape(-1, lookback + horizon)
    return w[:, :lookback], w[:, lookback:]


def _features(x: np.ndarray, variant: str):
    """Design matrix (n, k), and each window's mean and scale (n, 1) to undo it."""
    if variant == "raw":
        return np.c_[x, np.ones(len(x))], np.zeros((len(x), 1)), np.ones((len(x), 1))
    mean, scale = x.mean(1, keepdims=True), x.std(1, keepdims=True) + 1e-5
    columns = [(x - mean) / scale, np.ones((len(x), 1))]
    if variant == "revin+level":
        columns += [mean / scale, 1 / scale]
    return np.concatenate(columns, 1), mean, scale


def fold_mse(z: np.ndarray, lookback: int, horizon: int, fold: tuple[int, int],
             variant: str) -> tuple[float, float]:
    """(validation MSE, penalty) of the best penalty on ``fold`` (rows)."""
    x, y = _windows(z, lookback, horizon, 0, fold[0])
    xv, yv = _windows(z, lookback, horizon, *fold)
    F, mean, scale = _features(x, variant)
    Fv, mean_v, scale_v = _features(xv, variant)
    weight = scale[:, 0] ** 2 if variant != "raw" else np.ones(len(x))
    gram = (F * weight[:, None]).T @ F
    cross = (F * weight[:, None]).T @ ((y - mean) / scale)
    best = (np.inf, 0.0)
    for penalty in PENALTIES:
        beta = np.linalg.solve(gram + penalty * 1e-3 * weight.sum() * np.eye(len(gram)), cross)
        mse = float((((Fv @ beta) * scale_v + mean_v - yv) ** 2).mean())
        best = min(best, (mse, penalty))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dataset", choices=["ETTh1", "ETTm1"])
    parser.add_argument("--lookbacks", type=int, nargs="+", default=[512, 1024])
    parser.add_argument("--horizons", type=int, nargs="+", default=[96, 336, 720])
    parser.add_argument("--folds", nargs="+", default=["2880,5760", "5760,8640", "8640,11520"])
    parser.add_argument("--variants", nargs="+", default=["revin", "revin+level"],
                        choices=["raw", "revin", "revin+level"])
    args = parser.parse_args()
    per_hour = 4 if args.dataset == "ETTm1" else 1
    values = pd.read_csv(ett_path(args.dataset)).iloc[:, 1:].to_numpy(np.float64)
    train = values[:8640 * per_hour]
    z = (values - train.mean(0)) / train.std(0)
    for fold in args.folds:
        rows = tuple(int(hour) * per_hour for hour in fold.split(","))
        for lookback in args.lookbacks:
            for horizon in args.horizons:
                for variant in args.variants:
                    mse, penalty = fold_mse(z, lookback, horizon, rows, variant)
                    print(f"{args.dataset} fold {fold} L={lookback} H={horizon} {variant}: "
                          f"MSE {mse:.4f} (penalty {penalty:g})", flush=True)


if __name__ == "__main__":
    main()
