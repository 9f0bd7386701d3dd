"""Training speed and accuracy against neuralforecast's xLSTM, PatchTST and DLinear.

Same data and budget for every model: ETTh1 (7 channels, scaled with train-only
statistics), horizon 96, lookback 336, trained on rows [0, 8640) for 50 steps of
128 windows; then scored on test windows whose horizons lie in rows [11520, 14400),
one cutoff every 24 steps (MSE and MAE on scaled values). Model size as the issue
sets it: hidden 128, 2 blocks for the xLSTMs (ours: mLSTM only, sLSTM only, and the
default [mLSTM, sLSTM] mix). Each model runs in a fresh process; reported are
training windows per second (training time only), test errors and the process's
peak resident memory. Ratios are against neuralforecast's xLSTM in the same run.
Needs the ``bench`` extra (``neuralforecast``, ``xlstm``); without it only ours run.

    python benchmarks/peers.py       # -> benchmarks/results/peers-cpu.md (about 8 minutes)
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from datetime import date

import numpy as np
import pandas as pd
import torch
from _results import write_result

H, L, STEPS, BATCH, STRIDE = 96, 336, 50, 128, 24
TRAIN_END, TEST_START, TEST_END = 8640, 11520, 14400
OURS = {"xlstm-ts mLSTM": (), "xlstm-ts sLSTM": (0, 1), "xlstm-ts [mLSTM, sLSTM]": (1,)}
THEIRS = ["neuralforecast xLSTM (mLSTM)", "neuralforecast PatchTST", "neuralforecast DLinear"]


def _frame() -> pd.DataFrame:
    from accuracy import _ett_frame

    frame, _ = _ett_frame("ETTh1")
    return frame


def _errors(pred: np.ndarray, true: np.ndarray) -> dict:
    err = pred - true
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))}


def _ours(name: str, frame: pd.DataFrame) -> dict:
    from xlstm_ts import XLSTMForecaster
    from xlstm_ts.data import WindowDataset

    model = XLSTMForecaster(lookback=L, horizon=H, d_model=128, num_blocks=2,
                            slstm_at=OURS[name], batch_size=BATCH, batches_per_epoch=STEPS,
                            max_epochs=1, val_size=0, progress_bar=False, random_state=0)
    train = frame[frame.groupby("unique_id").cumcount() < TRAIN_END]
    start = time.perf_counter()
    model.fit(train)
    seconds = time.perf_counter() - start
    data = model._prepare(frame[frame.groupby("unique_id").cumcount() < TEST_END])
    test = WindowDataset(data, L, H, stride=STRIDE, region=(TEST_START, TEST_END))
    with torch.no_grad():
        batch = test[np.arange(len(test))]
        params, stats = model.network_(batch)
        pred = model.network_.denormalize(model.network_.head.point(params), stats)
    params_count = sum(p.numel() for p in model.network_.parameters())
    return {"train_seconds": seconds, "params": params_count,
            **_errors(pred.numpy(), batch["target"].numpy()), "windows": len(test)}


def _theirs(name: str, frame: pd.DataFrame) -> dict:
    from neuralforecast import NeuralForecast
    from neuralforecast.models import DLinear, PatchTST, xLSTM

    common = dict(h=H, input_size=L, max_steps=STEPS, windows_batch_size=BATCH,
                  random_seed=0, val_check_steps=STEPS, enable_progress_bar=False,
                  logger=False, enable_model_summary=False)
    if "xLSTM" in name:
        model = xLSTM(encoder_n_blocks=2, encoder_hidden_size=128, backbone="mLSTM", **common)
    elif "PatchTST" in name:
        model = PatchTST(**common)
    else:
        model = DLinear(**common)
    data = frame[frame.groupby("unique_id").cumcount() < TEST_END]
    train = frame[frame.groupby("unique_id").cumcount() < TRAIN_END]
    nf = NeuralForecast(models=[model], freq="h")
    start = time.perf_counter()
    nf.fit(train)
    seconds = time.perf_counter() - start
    n_windows = (TEST_END - TEST_START - H) // STRIDE + 1
    preds, trues = [], []
    for k in range(n_windows):
        cutoff = TEST_START + k * STRIDE  # first horizon row
        history = data[data.groupby("unique_id").cumcount() < cutoff]
        forecast = nf.predict(df=history)
        actual = data[(data.groupby("unique_id").cumcount() >= cutoff)
                      & (data.groupby("unique_id").cumcount() < cutoff + H)]
        merged = forecast.merge(actual, on=["unique_id", "ds"])
        column = next(c for c in forecast.columns if c not in ("unique_id", "ds"))
        preds.append(merged[column].to_numpy())
        trues.append(merged["y"].to_numpy())
    params_count = sum(p.numel() for p in model.parameters())
    return {"train_seconds": seconds, "params": params_count,
            **_errors(np.concatenate(preds), np.concatenate(trues)),
            "windows": n_windows * data.unique_id.nunique()}


def child(name: str) -> dict:
    torch.manual_seed(0)
    frame = _frame()
    result = _ours(name, frame) if name in OURS else _theirs(name, frame)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["windows_per_s"] = STEPS * BATCH / result["train_seconds"]
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
        return
    try:
        import neuralforecast  # noqa: F401
        names = [THEIRS[0], *OURS, *THEIRS[1:]]
    except ImportError:
        print("neuralforecast not installed (pip install -e '.[bench]'): only xlstm-ts runs")
        names = list(OURS)
    results = {}
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name], capture_output=True,
                             text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}", flush=True)
            results[name] = None
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results.get(THEIRS[0])
    lines = [
        "# Training speed and accuracy against peers (CPU)", "",
        "Command: `python benchmarks/peers.py`",
        f"Date: {date.today()}; {os.cpu_count()} cores, torch {torch.__version__}. ETTh1 "
        f"scaled with train-only statistics, horizon {H}, lookback {L}; every model trained "
        f"on rows [0, {TRAIN_END}) for {STEPS} steps of {BATCH} windows (hidden 128, 2 "
        f"blocks for the xLSTMs; neuralforecast defaults otherwise); test: cutoffs every "
        f"{STRIDE} steps with horizons in rows [{TEST_START}, {TEST_END}), all 7 channels. "
        "Each model in a fresh process; peak memory is that process's resident high-water "
        "mark.", "",
        "| model | params | train s | windows/s | vs nf xLSTM | test MSE | test MAE "
        "| peak MB |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        r = results[name]
        if r is None:
            lines.append(f"| {name} | failed | | | | | | |")
            continue
        ratio = f"{r['windows_per_s'] / base['windows_per_s']:.1f}x" if base else ""
        lines.append(f"| {name} | {r['params']:,} | {r['train_seconds']:.1f} | "
                     f"{r['windows_per_s']:.0f} | {ratio} | {r['mse']:.3f} | {r['mae']:.3f} | "
                     f"{r['peak_mb']:.0f} |")
    write_result("peers-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
