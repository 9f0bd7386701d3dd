"""Batch prediction for many series: throughput and peak memory.

A small forecaster is fitted (briefly: the point is prediction cost) on a seeded
synthetic panel of 10,000 hourly series x 400 points; then ``predict`` on all of
them is timed, in a fresh child process whose resident-memory high-water mark
minus its size before the call is reported. The network sees 1,024 series at a
time, so memory grows with the data, not with activations.

    python benchmarks/predict.py     # -> benchmarks/results/predict-cpu.md
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _results import write_result

N_SERIES, LENGTH = 10_000, 400


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def child(model_dir: str) -> dict:
    from xlstm_ts import XLSTMForecaster, datasets

    history = datasets.synthetic(N_SERIES, LENGTH, seasonalities=(24,), seed=0, frame="polars")
    model = XLSTMForecaster.load(model_dir)
    before = rss_mb()
    start = time.perf_counter()
    out = model.predict(df=history)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "rows": out.height, "peak_mb": peak - before,
            "history_mb": history.estimated_size() / 2**20}


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
        return
    from xlstm_ts import XLSTMForecaster, datasets

    train = datasets.synthetic(200, LENGTH, seasonalities=(24,), seed=1, frame="polars")
    model = XLSTMForecaster(lookback=168, horizon=24, max_epochs=1, batches_per_epoch=20,
                            n_models=1, progress_bar=False, random_state=0).fit(train)
    with tempfile.TemporaryDirectory() as tmp:
        model.save(tmp)
        out = subprocess.run([sys.executable, __file__, "--child", tmp], capture_output=True,
                             text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    text = "\n".join([
        "# Batch prediction: 10,000 series", "",
        "Command: `python benchmarks/predict.py`",
        f"Date: {date.today()}; {os.cpu_count()} cores, CPU. Default network (patch, "
        "d_model 64, 2 blocks), lookback 168, horizon 24; history 10,000 series x 400 hourly "
        "points (polars), validation and frame output included.", "",
        "| series | forecast rows | seconds | series/s | peak extra memory (MB) "
        "| history frame (MB) |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {N_SERIES} | {result['rows']} | {result['seconds']:.2f} | "
        f"{N_SERIES / result['seconds']:.0f} | {result['peak_mb']:.0f} | "
        f"{result['history_mb']:.0f} |",
    ]) + "\n"
    write_result("predict-cpu.md", text)


if __name__ == "__main__":
    main()
