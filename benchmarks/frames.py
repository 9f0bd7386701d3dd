"""Frame -> per-series float32 tensors: time of ``prepare_series`` on a large panel.

10,000 series x 1,000 hourly points (10 M rows) with one covariate, as pandas and
polars, sorted and shuffled; validation included (types, duplicates, frequency,
gaps, missing values). Median of 3 runs each.

    python benchmarks/frames.py     # -> benchmarks/results/frames-cpu.md
"""

from __future__ import annotations

import os
import time
from datetime import date

import numpy as np
import polars as pl
from _results import write_result

from xlstm_ts.data import prepare_series

N_SERIES, LENGTH, REPEATS = 10_000, 1_000, 3


def make_panel(shuffled: bool) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    ids = np.repeat(np.arange(N_SERIES), LENGTH)
    steps = np.tile(np.arange(LENGTH), N_SERIES)
    start = np.datetime64("2024-01-01T00:00", "us")
    frame = pl.DataFrame({
        "unique_id": np.char.add("series_", np.char.zfill(ids.astype(str), 5)),  # string ids
        "ds": start + steps.astype("timedelta64[h]"),
        "y": rng.standard_normal(len(ids)).astype(np.float64),
        "promo": (rng.random(len(ids)) < 0.1).astype(np.float64),
    })
    return frame.sample(fraction=1.0, shuffle=True, seed=0) if shuffled else frame


def timed(df) -> float:
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        data = prepare_series(df, future_covariates=["promo"])
        times.append(time.perf_counter() - start)
    assert data.n_series == N_SERIES and len(data.target) == N_SERIES * LENGTH
    return sorted(times)[REPEATS // 2]


def main() -> None:
    rows = []
    for shuffled in (False, True):
        panel = make_panel(shuffled)
        for kind, df in (("polars", panel), ("pandas", panel.to_pandas())):
            seconds = timed(df)
            order = "shuffled" if shuffled else "sorted"
            rows.append(f"| {kind} | {order} | {seconds:.3f} | "
                        f"{N_SERIES * LENGTH / seconds / 1e6:.1f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# Frame to tensors: `prepare_series` on 10,000 series x 1,000 points",
        "",
        "Command: `python benchmarks/frames.py`",
        f"Date: {date.today()}; {os.cpu_count()} cores, polars {pl.__version__}. 10 M rows "
        "(string id, hourly time, target, one covariate), validation included; median of "
        f"{REPEATS} runs.",
        "",
        "| input | row order | seconds | M rows/s |",
        "|---|---|---:|---:|",
        *rows,
    ]) + "\n"
    write_result("frames-cpu.md", text)


if __name__ == "__main__":
    main()
