"""Whole-model training throughput: windows per second of one training step (forward,
backward, AdamW step) of the forecaster's networks at its default width (d_model 64,
blocks [mLSTM, sLSTM], batch 64, horizon 96, point head, MSE), at lookback 336 and
720, with and without the linear path, and of the mixer (7 channels, as ETT), each
configuration in a fresh process (warm-up steps, then the median of timed steps). The
linear path's cost is the ratio of the two, measured in the same run.

    python benchmarks/throughput.py          # -> benchmarks/results/throughput-cpu.md
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from datetime import date

import torch
from _results import write_result

BATCH, HORIZON, WARMUP, STEPS, REPEATS = 64, 96, 5, 20, 3
CHANNELS = 7  # the mixer forecasts 7 channels jointly, as on ETT
CONFIGS = [(network, lookback, linear) for network in ("patch", "xlstmtime", "mixer")
           for lookback in (336, 720) for linear in (True, False)]


def _measure(network: str, lookback: int, linear: bool) -> dict:
    """One configuration's median step time, in this process."""
    import numpy as np

    from xlstm_ts.models import NetworkConfig
    from xlstm_ts.presets import resolve_window
    from xlstm_ts.training.module import ForecastModule, OptimConfig

    shape = resolve_window(lookback, None, None, horizon=HORIZON, val_size=0, freq=None,
                           lengths=np.array([lookback + HORIZON]))
    channels = CHANNELS if network == "mixer" else 0
    config = NetworkConfig(lookback=lookback, horizon=HORIZON, network=network,
                           linear_path=linear, patch_len=shape.patch_len,
                           patch_stride=shape.patch_stride, n_past=channels,
                           n_channels=channels)
    module = ForecastModule(config, OptimConfig())
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    batch = {"history": torch.randn(BATCH, lookback, generator=g),
             "history_mask": torch.ones(BATCH, lookback, dtype=torch.bool),
             "target": torch.randn(BATCH, HORIZON, generator=g),
             "target_mask": torch.ones(BATCH, HORIZON, dtype=torch.bool),
             "past": torch.randn(BATCH, lookback, channels, generator=g),
             "future": torch.zeros(BATCH, lookback + HORIZON, 0),
             "static": torch.zeros(BATCH, 0),
             "series": torch.arange(BATCH) % max(channels, 1)}
    times = []
    for k in range(WARMUP + STEPS):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        module._loss(batch).backward()
        optimizer.step()
        if k >= WARMUP:
            times.append(time.perf_counter() - start)
    seconds = statistics.median(times)
    return {"network": network, "lookback": lookback, "linear_path": linear,
            "params": sum(p.numel() for p in module.parameters()),
            "step_s": seconds, "windows_per_s": BATCH / seconds}


def main() -> None:
    if len(sys.argv) == 4:  # a child: one configuration
        network, lookback, linear = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "True"
        print(json.dumps(_measure(network, lookback, linear)))
        return
    # this machine's step times vary by up to 30% between processes: every configuration
    # runs REPEATS times, interleaved with the others, and keeps its median
    runs: dict[tuple, list[dict]] = {}
    for _ in range(REPEATS):
        for network, lookback, linear in CONFIGS:
            out = subprocess.run([sys.executable, __file__, network, str(lookback),
                                  str(linear)], capture_output=True, text=True, check=True)
            row = json.loads(out.stdout.strip().splitlines()[-1])
            runs.setdefault((network, lookback, linear), []).append(row)
            print(row, flush=True)
    rows = [sorted(found, key=lambda r: r["step_s"])[len(found) // 2]
            for found in runs.values()]
    by_key = {(r["network"], r["lookback"], r["linear_path"]): r for r in rows}
    lines = ["# Training throughput (CPU)", "",
             f"`python benchmarks/throughput.py`, {date.today()}, torch {torch.__version__}, "
             f"{os.cpu_count()} cores; batch {BATCH}, horizon {HORIZON}, d_model 64, blocks "
             f"[mLSTM, sLSTM], point head (MSE); median of {STEPS} steps after {WARMUP} "
             f"warm-up, each configuration in a fresh process, {REPEATS} processes per "
             f"configuration interleaved, their median kept (step times vary by up to 30% "
             f"between processes on this machine).", "",
             "| network | lookback | linear path | parameters | step (s) | windows/s | "
             "windows/s vs without the linear path | vs patch |",
             "|---|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        other = by_key[(r["network"], r["lookback"], not r["linear_path"])]
        patch = by_key[("patch", r["lookback"], r["linear_path"])]
        ratio = f"{r['windows_per_s'] / other['windows_per_s']:.2f}x" if r["linear_path"] else ""
        lines.append(f"| {r['network']} | {r['lookback']} | {'yes' if r['linear_path'] else 'no'}"
                     f" | {r['params']:,} | {r['step_s']:.4f} | {r['windows_per_s']:.0f} | "
                     f"{ratio} | {r['windows_per_s'] / patch['windows_per_s']:.2f}x |")
    write_result("throughput-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
