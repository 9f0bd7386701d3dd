"""The defaults on data of other shapes than the tuning sets: held-out-style checks.

The accuracy benchmarks tune nothing on these, but the choices of this round were
made on ETTh1, ETTm1, M4 Hourly and M3 Yearly. Here the bundled files are reshaped
into data the forecaster has not been chosen on, and the forecaster (only
``horizon`` given, everything else default) is compared in the same run with the
linear floor and the naive forecast:

- ``etth1-4h``: ETTh1's 7 channels resampled to 4-hour means (4,355 steps);
- ``etth1-daily``: the same as daily means (726 steps: short multivariate data,
  like weekly epidemiology or daily exchange rates);
- ``sunspots``: monthly sunspot numbers (one series, 3,126 steps, an 11-year cycle
  of changing size).

Split as the long-horizon protocol: the first 70% of the steps train, the next 10%
validate, the last 20% test; values standardised with the training rows' statistics.
By default the forecaster is fitted on the training rows and scored on every
stride-1 window whose horizon lies in the validation rows (for choices); with
``--final`` it is fitted on train + validation rows (it carves its own validation)
and scored on the test rows, and the read is logged in the test ledger.
The ridge maps the window-normalised lookback (the forecaster's) to the horizon,
channel independent, its penalty chosen on the validation rows, then solved again
on train + validation. MSE over windows, steps and channels.

    python benchmarks/derived.py --seeds 0 1 2 --final   # -> results/derived-cpu.md
    python benchmarks/derived.py --datasets sunspots --horizons 18 \
        --set patch_stride=2                     # a variant, on validation rows

Rows with ``--set`` are kept in the runs file but left out of the report.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from datetime import date

import numpy as np
import pandas as pd
import torch
from _ledger import add_final_flag, record_test_read
from _results import RESULTS, write_result
from accuracy import _overrides

RUNS = RESULTS / "derived-runs.jsonl"
TARGETS = {"etth1-4h": (42, 84), "etth1-daily": (7, 14, 30), "sunspots": (24, 60)}
PENALTIES = (1e-1, 1e0, 1e1, 1e2, 1e3, 1e4)


def load(name: str) -> pd.DataFrame:
    """The dataset as a wide frame: ``ds`` and one column per channel."""
    from xlstm_ts import datasets

    if name == "sunspots":
        return datasets.load_sunspots().pivot(index="ds", columns="unique_id",
                                              values="y").reset_index()
    wide = datasets.load_etth1().pivot(index="ds", columns="unique_id", values="y")
    return wide.resample("4h" if name == "etth1-4h" else "1D").mean().reset_index()


def _long(wide: pd.DataFrame) -> pd.DataFrame:
    return wide.melt(id_vars="ds", var_name="unique_id", value_name="y")[
        ["unique_id", "ds", "y"]]


def _windows(z: np.ndarray, lookback: int, horizon: int, lo: int, hi: int):
    """Lookbacks (n, C, L) and horizons (n, C, H) of the stride-1 windows whose horizon
    lies in rows [lo, hi) of z (T, C)."""
    ends = range(max(lo, lookback), hi - horizon + 1)
    return (np.stack([z[t - lookback:t].T for t in ends]),
            np.stack([z[t:t + horizon].T for t in ends]))


def _normalised(X: np.ndarray):
    """Rows of X (n, L) minus their mean over their std, a bias column appended."""
    mean, std = X.mean(1, keepdims=True), X.std(1, keepdims=True) + 1e-5
    return np.hstack([(X - mean) / std, np.ones((len(X), 1))]), mean, std


def ridge(z: np.ndarray, lookback: int, horizon: int, n_train: int, n_fit: int):
    """The linear floor: a forecast function of lookbacks (n, C, L) and its penalty."""
    def solve(lo, hi, penalty):
        X, Y = _windows(z, lookback, horizon, lo, hi)
        A, mean, std = _normalised(X.reshape(-1, lookback))
        B = (Y.reshape(-1, horizon) - mean) / std
        reg = penalty * np.eye(lookback + 1)
        reg[-1, -1] = 0.0
        return np.linalg.solve(A.T @ A + reg, A.T @ B)

    def forecast(W, X):
        A, mean, std = _normalised(X.reshape(-1, lookback))
        return ((A @ W) * std + mean).reshape(X.shape[0], X.shape[1], horizon)

    Xv, Yv = _windows(z, lookback, horizon, n_train, n_fit)
    errors = {p: float(((forecast(solve(0, n_train, p), Xv) - Yv) ** 2).mean())
              for p in PENALTIES}
    penalty = min(errors, key=errors.get)
    W = solve(0, n_fit, penalty)
    return (lambda X: forecast(W, X)), penalty


def run(name: str, horizon: int, seed: int, split: str, params: dict | None = None) -> dict:
    from xlstm_ts import XLSTMForecaster

    wide = load(name).dropna()
    channels = [c for c in wide.columns if c != "ds"]
    n = len(wide)
    n_train, n_fit, end = int(0.7 * n), int(0.8 * n), n
    train = wide[channels].iloc[:n_train]
    z = ((wide[channels] - train.mean()) / train.std(ddof=0)).to_numpy()
    if split == "val":  # fit on the training rows, score on the validation rows
        n_train, n_fit, end = int(n_train * 7 / 8), n_train, n_fit
    scaled = wide.assign(**dict(zip(channels, z.T, strict=True)))
    model = XLSTMForecaster(horizon=horizon, random_state=seed, progress_bar=False,
                            **(params or {}))
    start = time.perf_counter()
    model.fit(_long(scaled.iloc[:n_fit]))
    seconds = time.perf_counter() - start
    lookback = model.config_.lookback
    X, Y = _windows(z, lookback, horizon, n_fit, end)
    histories = [_long(scaled.iloc[t - lookback:t])
                 for t in range(max(n_fit, lookback), end - horizon + 1)]
    forecasts = np.stack([
        model.predict(df=h).pivot(index="unique_id", columns="ds", values="y_pred")
        .loc[channels].to_numpy() for h in histories])
    floor, penalty = ridge(z, lookback, horizon, n_train, n_fit)
    naive = np.repeat(X[:, :, -1:], horizon, axis=2)
    return {"dataset": name, "horizon": horizon, "seed": seed, "split": split,
            **({"params": params} if params else {}), "lookback": lookback, "windows": len(X),
            "mse": float(((forecasts - Y) ** 2).mean()),
            "ridge": float(((floor(X) - Y) ** 2).mean()), "ridge_penalty": penalty,
            "naive": float(((naive - Y) ** 2).mean()), "fit_seconds": seconds,
            "epochs": model.epochs_trained_, "kept": model.correction_share_,
            "date": str(date.today()), "torch": torch.__version__}


def report() -> None:
    runs = [json.loads(line) for line in RUNS.read_text().splitlines()]
    runs = [r for r in runs if "params" not in r]  # the defaults only
    latest = {}
    for r in runs:  # the newest run of each (dataset, horizon, seed, split)
        latest[(r["dataset"], r["horizon"], r["seed"], r["split"])] = r
    lines = ["# Defaults on derived data (held-out style)", "",
             "Command: `python benchmarks/derived.py --seeds 0 1 2 --final` (test) and "
             "without `--final` (validation). "
             f"Date: {date.today()}; {os.cpu_count()} cores, CPU. The forecaster with only "
             "`horizon` given; ridge (the forecaster's lookback, penalty chosen on the "
             "validation rows) and naive from the same run. MSE on train-standardised "
             "values over every stride-1 window of the split; mean over seeds (ridge and "
             "naive are deterministic). `kept`: the trained network's share of each "
             "forecast against its linear start, per seed.", ""]
    for split in ("test", "val"):
        keys = sorted({(d, h) for d, h, _, s in latest if s == split},
                      key=lambda k: (list(TARGETS).index(k[0]), k[1]))
        if not keys:
            continue
        lines += [f"## {split} split", "",
                  "| dataset | horizon | lookback | seeds | MSE | ridge | naive | vs ridge "
                  "| kept | fit s |", "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
        for d, h in keys:
            rs = [r for (d2, h2, _, s), r in latest.items() if (d2, h2, s) == (d, h, split)]
            mse = statistics.mean(r["mse"] for r in rs)
            kept = ", ".join(f"{r['kept'][0]:g}" for r in rs)
            lines.append(
                f"| {d} | {h} | {rs[0]['lookback']} | {len(rs)} | {mse:.4f} | "
                f"{rs[0]['ridge']:.4f} | {rs[0]['naive']:.4f} | "
                f"{100 * (mse / rs[0]['ridge'] - 1):+.1f}% | {kept} | "
                f"{statistics.mean(r['fit_seconds'] for r in rs):.0f} |")
        lines.append("")
    write_result("derived-cpu.md", "\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--datasets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=None,
                        help="instead of each dataset's own (TARGETS)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    add_final_flag(parser)
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    split = "test" if args.final else "val"
    if args.final and not args.report_only:
        record_test_read("derived.py", args.datasets, " ".join(args.set) or "defaults",
                         seeds=args.seeds, horizons=args.horizons)
    if not args.report_only:
        for name in args.datasets:
            for horizon in args.horizons or TARGETS[name]:
                for seed in args.seeds:
                    line = run(name, horizon, seed, split, _overrides(args.set))
                    print(json.dumps(line), flush=True)
                    with open(RUNS, "a") as f:
                        f.write(json.dumps(line) + "\n")
    report()


if __name__ == "__main__":
    main()
