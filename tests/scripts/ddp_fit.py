"""Fit a tiny forecaster, data-parallel or not, and write what the DDP test compares.

    python tests/scripts/ddp_fit.py OUT DEVICES BATCH_SIZE

Run as a script because Lightning's "ddp" launcher starts the other ranks by running
this same command again. Global rank 0 writes ``OUT/losses.json`` and saves the model
to ``OUT/model``; every rank writes ``OUT/rank-<r>.json`` with what it saw.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from xlstm_ts import XLSTMForecaster
from xlstm_ts.training import is_rank_zero


def panel(n_series: int = 3, length: int = 240) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    t = np.arange(length)
    frames = [pd.DataFrame({"unique_id": f"s{i}",
                            "ds": pd.date_range("2024-01-01", periods=length, freq="h"),
                            "y": np.sin(2 * np.pi * (t + 5 * i) / 24)
                            + 0.1 * rng.standard_normal(length)})
              for i in range(n_series)]
    return pd.concat(frames, ignore_index=True)


def main() -> None:
    out, devices, batch_size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(1)
    model = XLSTMForecaster(
        lookback=24, horizon=6, patch_len=8, patch_stride=4, d_model=16, num_blocks=1,
        slstm_at=(), dropout=0.0, loss="mse", batch_size=batch_size, max_epochs=3,
        batches_per_epoch=4,
        val_size=24, patience=None, accelerator="cpu", devices=devices,
        strategy="ddp" if devices > 1 else "auto", checkpoint_dir=str(out / "checkpoints"),
        progress_bar=False, random_state=0)
    model.fit(panel())
    rank = model.global_rank_
    (out / f"rank-{rank}.json").write_text(json.dumps({"rank": rank,
                                                       "rank_zero": is_rank_zero()}))
    model.save(out / "model")
    if is_rank_zero():
        (out / "losses.json").write_text(json.dumps(model.loss_history_))


if __name__ == "__main__":
    main()
