"""Zero-shot accuracy of a TiRex-2 checkpoint, beside seasonal naive in the same run.

    python benchmarks/zeroshot.py CHECKPOINT                 # validation rows
    python benchmarks/zeroshot.py CHECKPOINT --final         # test rows (ledger)
    python benchmarks/zeroshot.py --smoke                    # tiny random weights

CHECKPOINT is a folder (config.json + model.safetensors), a shipped name or a hub
name (``XLSTMForecaster(network="tirex2", pretrained=...)``, nothing trained).
Protocols as ``benchmarks/accuracy.py``:

- M4 Hourly (414 series, horizon 48): sMAPE and MASE (season 24), averaged over
  series; validation = each training series' last 48 values;
- M3 Yearly (645 series, horizon 6): sMAPE and MASE (season 1); validation = the
  last 6 values of each training series;
- ETTh1 (7 channels standardised with the train rows' statistics, horizon 96):
  MSE / MAE over windows whose horizon lies in the validation rows [8640, 11520) or,
  with ``--final``, the test rows [11520, 14400); one window every ``--stride``
  steps (the protocol's 1 is costly zero-shot on CPU: each window reads up to 2048
  steps of history); the ridge of ``accuracy.py`` in the same run.

Beside each: the scaled quantile loss (weighted over the levels 0.1 ... 0.9; a point
forecast scores its WAPE) and the coverage of the 80% band [q0.1, q0.9]. Seasonal
naive (24 for hourly data, 1 for yearly) is computed in the same run. ``--smoke``
runs a tiny randomly initialised network: it checks the harness, not a model. Rows
go to ``benchmarks/results/zeroshot-runs.jsonl``; the table of a ``--final`` read also
to ``zeroshot.md`` (of ``--smoke`` to ``zeroshot-smoke.md``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _ledger import add_final_flag, record_test_read
from _results import RESULTS, write_result

ROOT = Path(__file__).resolve().parent.parent
RUNS = RESULTS / "zeroshot-runs.jsonl"
LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def _panel_scores(forecast: pd.DataFrame, actual: pd.DataFrame, train: pd.DataFrame,
                  season: int) -> dict:
    from xlstm_ts.evaluation.metrics import coverage, evaluate, scaled_quantile_loss

    merged = forecast.merge(actual, on=["unique_id", "ds"], validate="one_to_one")
    scores = evaluate(merged, metrics=("smape", "mase"), train_df=train, season=season)
    columns = [f"y_pred_q{q:g}" for q in LEVELS]
    if all(c in merged for c in columns):
        q = merged[columns].to_numpy()
        scores["sql"] = scaled_quantile_loss(merged["y"].to_numpy(), q, LEVELS)
        scores["coverage80"] = coverage(merged["y"], merged["y_pred_q0.1"], merged["y_pred_q0.9"])
    else:  # a point forecast: every level at the point
        y, p = merged["y"].to_numpy(), merged["y_pred"].to_numpy()
        scores["sql"] = scaled_quantile_loss(y, np.repeat(p[:, None], len(LEVELS), 1), LEVELS)
        scores["coverage80"] = float("nan")
    return scores


def _competition(name: str, train: pd.DataFrame, test: pd.DataFrame, horizon: int,
                 season: int, model, final: bool) -> list[dict]:
    from xlstm_ts.evaluation.baselines import SeasonalNaive

    if not final:  # validation: each training series' last horizon
        position = train.groupby("unique_id").cumcount(ascending=False)
        train, test = train[position >= horizon], train[position < horizon]
    rows = []
    start = time.perf_counter()
    naive = SeasonalNaive(season).fit(train).predict(horizon)
    rows.append({"model": f"seasonal naive ({season})", "seconds": time.perf_counter() - start,
                 **_panel_scores(naive, test, train, season)})
    start = time.perf_counter()
    forecast = model.predict(train)
    rows.append({"model": "zero-shot", "seconds": time.perf_counter() - start,
                 **_panel_scores(forecast, test, train, season)})
    return [{"dataset": name, "split": "test" if final else "val", **r} for r in rows]


def _ett(model, final: bool, stride: int, horizon: int = 96) -> list[dict]:
    from accuracy import _ett_frame, run_ridge

    frame, per_hour = _ett_frame("ETTh1")
    lo, hi = (11520, 14400) if final else (8640, 11520)
    wide = frame.pivot(index="ds", columns="unique_id", values="y")
    cutoffs = range(lo, hi - horizon + 1, stride)
    errors, naive_errors, quantiles, actuals = [], [], [], []
    start = time.perf_counter()
    for cut in cutoffs:
        history = frame[frame["ds"].isin(wide.index[max(0, cut - 2048):cut])]
        truth = wide.iloc[cut:cut + horizon]
        forecast = model.predict(history, horizon=horizon)
        pred = forecast.pivot(index="ds", columns="unique_id", values="y_pred")
        errors.append(pred.to_numpy() - truth.to_numpy())
        last_day = wide.iloc[cut - 24:cut].to_numpy()
        naive_errors.append(np.resize(last_day, truth.shape) - truth.to_numpy())
        qs = np.stack([forecast.pivot(index="ds", columns="unique_id",
                                      values=f"y_pred_q{q:g}").to_numpy() for q in LEVELS], -1)
        quantiles.append(qs)
        actuals.append(truth.to_numpy())
    seconds = time.perf_counter() - start
    from xlstm_ts.evaluation.metrics import scaled_quantile_loss

    e, n = np.stack(errors), np.stack(naive_errors)
    q, y = np.stack(quantiles), np.stack(actuals)
    split = "test" if final else "val"
    rows = [{"dataset": "ETTh1", "split": split, "model": "seasonal naive (24)",
             "mse": float((n ** 2).mean()), "mae": float(np.abs(n).mean())},
            {"dataset": "ETTh1", "split": split, "model": "zero-shot", "seconds": seconds,
             "mse": float((e ** 2).mean()), "mae": float(np.abs(e).mean()),
             "sql": scaled_quantile_loss(y, q, LEVELS),
             "coverage80": float(((y >= q[..., 0]) & (y <= q[..., -1])).mean())}]
    if final:
        ridge = run_ridge(frame, per_hour, 336, horizon)
        rows.append({"dataset": "ETTh1", "split": split, "model": "ridge (lookback 336)",
                     "mse": ridge["mse"], "mae": ridge["mae"]})
    for r in rows:
        r["windows"] = len(cutoffs) * wide.shape[1]
    return rows


def _smoke_checkpoint(folder: Path) -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from tirex2_reference import config

    from xlstm_ts.models.tirex2 import TiRex2Config, TiRex2Network, save_checkpoint

    torch.manual_seed(0)
    cfg = TiRex2Config.from_dict(config(D=32, P=8, context=256, future=96))
    return str(save_checkpoint(TiRex2Network(cfg), folder))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny randomly initialised network (checks the harness)")
    parser.add_argument("--datasets", nargs="+", default=["m4", "m3", "etth1"],
                        choices=["m4", "m3", "etth1"])
    parser.add_argument("--stride", type=int, default=24, help="ETTh1 window stride")
    add_final_flag(parser)
    args = parser.parse_args()
    if not args.smoke and not args.checkpoint:
        parser.error("pass a CHECKPOINT, or --smoke")
    from accuracy import load_m3_yearly

    from xlstm_ts import XLSTMForecaster, datasets

    torch.set_num_threads(os.cpu_count() or 1)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = _smoke_checkpoint(Path(tmp) / "smoke") if args.smoke else args.checkpoint
        label = "random weights (smoke test)" if args.smoke else str(args.checkpoint)
        names = {"m4": "M4-Hourly", "m3": "M3-Yearly", "etth1": "ETTh1"}
        if args.final:
            record_test_read("zeroshot.py", [names[d] for d in args.datasets], label,
                             stride=args.stride)

        def model(horizon):
            return XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=horizon,
                                   quantiles=LEVELS, progress_bar=False)

        rows = []
        if "m4" in args.datasets:
            rows += _competition("M4-Hourly", datasets.load_m4_hourly("train"),
                                 datasets.load_m4_hourly("test"), 48, 24, model(48), args.final)
        if "m3" in args.datasets:
            rows += _competition("M3-Yearly", *load_m3_yearly(), 6, 1, model(6), args.final)
        if "etth1" in args.datasets:
            rows += _ett(model(96), args.final, args.stride)
    stamp = {"checkpoint": label, "date": str(date.today()), "cores": os.cpu_count(),
             "torch": torch.__version__, "command": " ".join(sys.argv)}
    with open(RUNS, "a") as f:
        for r in rows:
            f.write(json.dumps({**stamp, **r}) + "\n")
    lines = [f"# Zero-shot: {label}", "", f"Command: `python {' '.join(sys.argv)}`; "
             f"{date.today()}, {os.cpu_count()} cores, torch {torch.__version__}.", "",
             "| dataset | split | model | sMAPE | MASE | MSE | MAE | scaled QL | 80% cover | s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]

    def cell(r, k, fmt="{:.3f}"):
        return fmt.format(r[k]) if k in r and r[k] == r[k] else ""

    for r in rows:
        lines.append(f"| {r['dataset']} | {r['split']} | {r['model']} | {cell(r, 'smape')} | "
                     f"{cell(r, 'mase')} | {cell(r, 'mse')} | {cell(r, 'mae')} | "
                     f"{cell(r, 'sql')} | {cell(r, 'coverage80', '{:.1%}')} | "
                     f"{cell(r, 'seconds', '{:.1f}')} |")
    print("\n".join(lines))
    if args.smoke or args.final:  # validation runs are rows in RUNS: they leave the
        # test read's file (linked from the README) as it is
        write_result("zeroshot-smoke.md" if args.smoke else "zeroshot.md",
                     "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
