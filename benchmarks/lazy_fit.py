"""Peak memory of ``fit`` against panel size: a panel read into memory against the
same panel passed as parquet files (staged a batch of series at a time,
``xlstm_ts.data.lazy``).

Panels of N daily series x D days (5,000 / 20,000 / 40,000 series of 365 days, and
20,000 of 1,460; a random walk with a weekly cycle each) are written as parquet
files of 5,000 series. Each fit runs in a
fresh process and reports its peak resident memory: ``network="tirex2"`` with the
shipped ``xlstm-ts-small``, horizon 14, fine-tuning the head for one short epoch (5
batches: the memory of training does not grow with the panel either way), then a
forecast of every series. "in memory": ``fit(pl.read_parquet(folder))``; "lazy":
``fit(folder)``.

    python benchmarks/lazy_fit.py      # -> benchmarks/results/lazy-fit-cpu.md
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np
import polars as pl
from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
SIZES = ((5_000, 365), (20_000, 365), (40_000, 365), (20_000, 1460))  # (series, days)
FILE_SERIES = 5_000


def _write_panel(folder: Path, n: int, days: int) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    dates = pl.date_range(pl.date(2020, 1, 1), pl.date(2030, 1, 1), eager=True)[:days]
    week = np.sin(2 * np.pi * np.arange(days) / 7)
    for start in range(0, n, FILE_SERIES):
        k = min(FILE_SERIES, n - start)
        y = 100 + np.cumsum(rng.normal(0, 1, (k, days)), 1) + 5 * week
        pl.DataFrame({"unique_id": np.repeat([f"s{start + j}" for j in range(k)], days),
                      "ds": pl.Series(np.tile(dates.to_numpy(), k)),
                      "y": y.reshape(-1).astype(np.float32)}).write_parquet(
            folder / f"part-{start // FILE_SERIES:03d}.parquet")


def child(folder: str, how: str, out: str) -> None:
    import torch

    from xlstm_ts import XLSTMForecaster

    torch.set_num_threads(os.cpu_count() or 1)
    model = XLSTMForecaster(network="tirex2", pretrained="xlstm-ts-small", horizon=14,
                            finetune="head", max_epochs=1, batches_per_epoch=5,
                            progress_bar=False, random_state=0)
    start = time.perf_counter()
    source = pl.read_parquet(folder) if how == "in memory" else folder
    forecast = model.fit(source).predict()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    Path(out).write_text(json.dumps({"seconds": seconds, "peak_mb": peak,
                                     "forecasts": len(forecast)}))


def main() -> None:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, days in SIZES:
            folder = Path(tmp) / f"panel-{n}-{days}"
            _write_panel(folder, n, days)
            for how in ("in memory", "lazy"):
                out = Path(tmp) / "out.json"
                subprocess.run([sys.executable, __file__, "--child", str(folder), how, str(out)],
                               check=True, cwd=ROOT / "benchmarks")
                r = json.loads(out.read_text())
                rows.append(f"| {n:,} | {days:,} | {n * days / 1e6:.1f}M | {how} | "
                            f"{r['peak_mb']:,.0f} | "
                            f"{r['seconds']:.1f} |")
                print(rows[-1], flush=True)
    import torch

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    write_result("lazy-fit-cpu.md", "\n".join([
        "# Peak memory of fit against panel size", "",
        "Command: `python benchmarks/lazy_fit.py`", "",
        f"Date {date.today()}, commit {commit}, {os.cpu_count()} cores "
        f"({platform.machine()}), torch {torch.__version__}. Daily series as parquet files "
        f"of {FILE_SERIES:,} series; `network=\"tirex2\"`, "
        "`pretrained=\"xlstm-ts-small\"`, horizon 14, `finetune=\"head\"` for one epoch of "
        "5 batches, then `predict()`; each fit in a fresh process (peak = its resident "
        "high-water mark, the interpreter and torch included). In memory = "
        "`fit(pl.read_parquet(folder))`; lazy = `fit(folder)`.", "",
        "| series | days | rows | fit | peak MB | fit + predict s |",
        "|---:|---:|---:|---|---:|---:|",
        *rows, ""]))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
    else:
        main()
