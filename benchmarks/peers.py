"""Training speed and accuracy against neuralforecast's xLSTM, PatchTST and DLinear.

Same data and budget for every model: ETTh1 (7 channels, scaled with train-only
statistics), horizon 96, lookback 336, trained on rows [0, 8640) for 50 steps of
128 windows; then scored on test windows whose horizons lie in rows [11520, 14400),
one cutoff every 24 steps (MSE and MAE on scaled values). Model size as the issue
sets it: hidden 128, 2 blocks for the xLSTMs (ours: mLSTM only, sLSTM only, and the
default [mLSTM, sLSTM] mix). Every model is validated every 10 steps on the windows
whose horizons lie in rows [8640, 8904) (7 days after the training rows); a
Lightning callback, the same for all, times the validations apart, so reported are
training windows per second (training time only), the training time until the best
validation loss, test errors and the process's peak resident memory. Each model runs
in a fresh process. Ratios are against neuralforecast's xLSTM in the same run.
Needs the ``bench`` extra (``neuralforecast``, ``xlstm``); without it only ours run.

    python benchmarks/peers.py       # -> benchmarks/results/peers-cpu.md (about 8 minutes)
    python benchmarks/peers.py --final   # the test rows (logged in the test ledger)
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
from _ledger import record_test_read
from _results import write_result

H, L, STEPS, BATCH, STRIDE, VAL_EVERY = 96, 336, 50, 128, 24, 10
TRAIN_END, TEST_START, TEST_END = 8640, 11520, 14400
VAL_ROWS = H + 7 * 24  # validation horizons in rows [TRAIN_END, TRAIN_END + VAL_ROWS)
# The rows scored: the protocol's test rows with --final (logged in the test ledger),
# else the validation rows that early stopping does not watch.
SCORED = {"test": (TEST_START, TEST_END), "val": (TRAIN_END + VAL_ROWS, TEST_START)}
OURS = {"xlstm-ts mLSTM": (), "xlstm-ts sLSTM": (0, 1), "xlstm-ts [mLSTM, sLSTM]": (1,)}
THEIRS = ["neuralforecast xLSTM (mLSTM)", "neuralforecast PatchTST", "neuralforecast DLinear"]


def _frame() -> pd.DataFrame:
    from accuracy import _ett_frame

    frame, _ = _ett_frame("ETTh1")
    return frame


def _clock(base):
    """A callback (subclass of ``base``, Lightning's or pytorch_lightning's Callback)
    recording, at each validation, the training seconds so far (validations excluded).
    The record lives in this closure, not on the instance: neuralforecast trains a copy
    of the callbacks it is given."""
    record = {"val_seconds": 0.0, "marks": []}

    class Clock(base):
        def on_train_start(self, trainer, module):
            record["start"] = time.perf_counter()

        def on_validation_start(self, trainer, module):
            record["val_start"] = time.perf_counter()

        def on_validation_end(self, trainer, module):
            if trainer.sanity_checking:  # before training starts; not a measurement
                return
            now = time.perf_counter()
            record["val_seconds"] += now - record["val_start"]
            metrics = trainer.callback_metrics
            loss = next((float(metrics[k]) for k in ("val_loss", "valid_loss", "ptl/val_loss")
                         if k in metrics), float("nan"))
            record["marks"].append((now - record["start"] - record["val_seconds"], loss))

        def summary(self, fit_seconds: float, losses=None) -> dict:
            marks = record["marks"]
            losses = (losses or [loss for _, loss in marks])[-len(marks):]
            best = int(np.nanargmin(losses))
            return {"train_seconds": fit_seconds - record["val_seconds"],
                    "val_seconds": record["val_seconds"], "to_best_seconds": marks[best][0],
                    "best_step": (best + 1) * VAL_EVERY, "val_losses": losses}

    return Clock()


def _errors(pred: np.ndarray, true: np.ndarray) -> dict:
    err = pred - true
    return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err)))}


def _ours(name: str, frame: pd.DataFrame, split: str) -> dict:
    from lightning.pytorch.callbacks import Callback

    from xlstm_ts import XLSTMForecaster
    from xlstm_ts.data import WindowDataset

    clock = _clock(Callback)
    model = XLSTMForecaster(lookback=L, horizon=H, d_model=128, num_blocks=2,
                            slstm_at=OURS[name], batch_size=BATCH, batches_per_epoch=VAL_EVERY,
                            max_epochs=STEPS // VAL_EVERY, val_size=VAL_ROWS, patience=None,
                            callbacks=[clock], progress_bar=False, random_state=0)
    train = frame[frame.groupby("unique_id").cumcount() < TRAIN_END + VAL_ROWS]
    start = time.perf_counter()
    model.fit(train)
    timing = clock.summary(time.perf_counter() - start)
    first, end = SCORED[split]
    data = model._prepare(frame[frame.groupby("unique_id").cumcount() < end])
    test = WindowDataset(data, L, H, stride=STRIDE, region=(first, end))
    with torch.no_grad():
        batch = test[np.arange(len(test))]
        params, stats = model.network_(batch)
        pred = model.network_.denormalize(model.network_.head.point(params), stats)
    params_count = sum(p.numel() for p in model.network_.parameters())
    return {**timing, "params": params_count,
            **_errors(pred.numpy(), batch["target"].numpy()), "windows": len(test)}


def _theirs(name: str, frame: pd.DataFrame, split: str) -> dict:
    import pytorch_lightning as pl
    from neuralforecast import NeuralForecast
    from neuralforecast.models import DLinear, PatchTST, xLSTM

    clock = _clock(pl.Callback)
    common = dict(h=H, input_size=L, max_steps=STEPS, windows_batch_size=BATCH,
                  random_seed=0, val_check_steps=VAL_EVERY, early_stop_patience_steps=-1,
                  enable_progress_bar=False, logger=False, enable_model_summary=False,
                  callbacks=[clock], num_sanity_val_steps=0)
    if "xLSTM" in name:
        model = xLSTM(encoder_n_blocks=2, encoder_hidden_size=128, backbone="mLSTM", **common)
    elif "PatchTST" in name:
        model = PatchTST(**common)
    else:
        model = DLinear(**common)
    first, end = SCORED[split]
    data = frame[frame.groupby("unique_id").cumcount() < end]
    train = frame[frame.groupby("unique_id").cumcount() < TRAIN_END + VAL_ROWS]
    nf = NeuralForecast(models=[model], freq="h")
    start = time.perf_counter()
    nf.fit(train, val_size=VAL_ROWS)
    fitted = nf.models[0]
    timing = clock.summary(time.perf_counter() - start,
                           [float(loss) for _, loss in fitted.valid_trajectories])
    n_windows = (end - first - H) // STRIDE + 1
    preds, trues = [], []
    for k in range(n_windows):
        cutoff = first + k * STRIDE  # first horizon row
        history = data[data.groupby("unique_id").cumcount() < cutoff]
        forecast = nf.predict(df=history)
        actual = data[(data.groupby("unique_id").cumcount() >= cutoff)
                      & (data.groupby("unique_id").cumcount() < cutoff + H)]
        merged = forecast.merge(actual, on=["unique_id", "ds"])
        column = next(c for c in forecast.columns if c not in ("unique_id", "ds"))
        preds.append(merged[column].to_numpy())
        trues.append(merged["y"].to_numpy())
    params_count = sum(p.numel() for p in fitted.parameters())
    return {**timing, "params": params_count,
            **_errors(np.concatenate(preds), np.concatenate(trues)),
            "windows": n_windows * data.unique_id.nunique()}


def child(name: str, split: str) -> dict:
    torch.manual_seed(0)
    frame = _frame()
    result = _ours(name, frame, split) if name in OURS else _theirs(name, frame, split)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["windows_per_s"] = STEPS * BATCH / result["train_seconds"]
    return result


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], sys.argv[3])))
        return
    split = "test" if "--final" in sys.argv[1:] else "val"
    if split == "test":
        record_test_read("peers.py", ["ETTh1"], "peers at equal steps")
    first, end = SCORED[split]
    try:
        import neuralforecast  # noqa: F401
        names = [THEIRS[0], *OURS, *THEIRS[1:]]
    except ImportError:
        print("neuralforecast not installed (pip install -e '.[bench]'): only xlstm-ts runs")
        names = list(OURS)
    results = {}
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--child", name, split],
                             capture_output=True, text=True)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}", flush=True)
            results[name] = None
            continue
        results[name] = json.loads(out.stdout.strip().splitlines()[-1])
        print(name, results[name], flush=True)
    base = results.get(THEIRS[0])
    lines = [
        "# Training speed and accuracy against peers (CPU)", "",
        f"Command: `python benchmarks/peers.py{' --final' if split == 'test' else ''}`",
        f"Date: {date.today()}; {os.cpu_count()} cores, torch {torch.__version__}. ETTh1 "
        f"scaled with train-only statistics, horizon {H}, lookback {L}; every model trained "
        f"on rows [0, {TRAIN_END}) for {STEPS} steps of {BATCH} windows (hidden 128, 2 "
        f"blocks for the xLSTMs; neuralforecast defaults otherwise); {split}: cutoffs every "
        f"{STRIDE} steps with horizons in rows [{first}, {end}), all 7 channels. "
        f"Validation every {VAL_EVERY} steps on horizons in rows [{TRAIN_END}, "
        f"{TRAIN_END + VAL_ROWS}); 'train s' excludes validation time; 'to best val' is the "
        "training time until the lowest validation loss (each model's own loss; xlstm-ts "
        "keeps the weights of that step, neuralforecast the last ones). Each model in a "
        "fresh process; peak memory is that process's resident high-water mark.", "",
        "| model | params | train s | windows/s | vs nf xLSTM | to best val s (step) "
        f"| {split} MSE | {split} MAE | peak MB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        r = results[name]
        if r is None:
            lines.append(f"| {name} | failed | | | | | | | |")
            continue
        ratio = f"{r['windows_per_s'] / base['windows_per_s']:.1f}x" if base else ""
        lines.append(f"| {name} | {r['params']:,} | {r['train_seconds']:.1f} | "
                     f"{r['windows_per_s']:.0f} | {ratio} | {r['to_best_seconds']:.1f} "
                     f"({r['best_step']}) | {r['mse']:.3f} | {r['mae']:.3f} | "
                     f"{r['peak_mb']:.0f} |")
    write_result("peers-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
