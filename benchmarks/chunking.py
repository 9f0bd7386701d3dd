"""Even chunks against whole chunks of 64: the chunkwise mLSTM at sequence lengths
that are not multiples of the chunk size.

The patch network's token count is ``(lookback - patch_len) // patch_stride + 1``:
about 41 from lookback 336 on, but 55-78 for lookbacks of 57-79 (3-step patches
stepping 1: monthly data at horizons 15-19, daily at 14-19), and the per-step
network runs over the whole lookback. ``mlstm_chunkwise`` cuts S steps into
``ceil(S / 64)`` chunks of equal length; before 2026-12-05 it cut chunks of 64 and
padded the last (70 steps: 128 computed; S below 64 was one chunk either way, the
control row). The previous rule is measured here in the
same run by padding the inputs to whole chunks of 64 exactly as it did (no input,
no forgetting), so both compute the same outputs.

Forward + backward of q, k, v (B 64, NH 4, DH 32: the patch network's default
width) and the gates, float32, median of repeated calls in one process.

    python benchmarks/chunking.py     # -> benchmarks/results/chunking-cpu.md
"""

from __future__ import annotations

import os
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F_
from _results import write_result

B, NH, DH, CHUNK, WARMUP, REPEATS = 64, 4, 32, 64, 3, 15
LENGTHS = (41, 70, 100, 336, 720)


def _inputs(S: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(S)
    q, k, v = (torch.randn(B, NH, S, DH, generator=g) for _ in range(3))
    i = torch.randn(B, NH, S, generator=g)
    log_f = F_.logsigmoid(torch.randn(B, NH, S, generator=g) + 3.0)
    return [t.requires_grad_() for t in (q, k, v, i, log_f)]


def _run(inputs: list[torch.Tensor], padded: bool) -> torch.Tensor:
    """h (B, NH, S, DH) of the chunkwise form; ``padded``: the inputs padded to whole
    chunks of min(CHUNK, S) first (the previous rule), the padding's outputs dropped."""
    from xlstm_ts.cells.mlstm.chunkwise import mlstm_chunkwise

    q, k, v, i, log_f = inputs
    S = q.shape[2]
    pad = -S % min(CHUNK, S) if padded else 0
    if pad:
        q, k, v = (F_.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        i = F_.pad(i, (0, pad), value=float("-inf"))
        log_f = F_.pad(log_f, (0, pad))
    C = q.new_zeros(B, NH, DH, DH)
    n, m = q.new_zeros(B, NH, DH), q.new_zeros(B, NH)
    h, _ = mlstm_chunkwise(q, k, v, i, log_f, C, n, m, 1e-6, CHUNK)
    return h[:, :, :S]


def _seconds(inputs: list[torch.Tensor], padded: bool) -> float:
    weight = torch.randn(B, NH, inputs[0].shape[2], DH)
    times = []
    for k in range(WARMUP + REPEATS):
        start = time.perf_counter()
        (_run(inputs, padded) * weight).sum().backward()
        if k >= WARMUP:
            times.append(time.perf_counter() - start)
        for t in inputs:
            t.grad = None
    return statistics.median(times)


def main() -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    lines = ["# Chunkwise mLSTM: even chunks against whole chunks of 64 (CPU)", "",
             f"`python benchmarks/chunking.py`, {date.today()}, torch {torch.__version__}, "
             f"{os.cpu_count()} cores; forward + backward, B {B}, NH {NH}, DH {DH}, "
             f"float32, median of {REPEATS} calls after {WARMUP} warm-up, both rules in "
             f"one process.", "",
             "| S | even chunks | steps computed | chunks of min(64, S) (before) | steps "
             "computed | time, even (s) | time, before (s) | speed-up |",
             "|---:|---|---:|---|---:|---:|---:|---:|"]
    for S in LENGTHS:
        inputs = _inputs(S)
        with torch.no_grad():  # the same outputs, to float32 round-off
            torch.testing.assert_close(_run(inputs, False), _run(inputs, True),
                                       rtol=1e-4, atol=1e-4)
        NC = -(-S // CHUNK)
        L, old = -(-S // NC), min(CHUNK, S)
        even, before = _seconds(inputs, False), _seconds(inputs, True)
        lines.append(f"| {S} | {NC} x {L} | {NC * L} | {NC} x {old} | {NC * old} | "
                     f"{even:.4f} | {before:.4f} | {before / even:.2f}x |")
        print(lines[-1], flush=True)
    write_result("chunking-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
