"""Effect of glibc's malloc thresholds on a CPU training step.

glibc serves large allocations with mmap and returns freed heap to the OS
eagerly, so a training loop that frees and re-allocates the same large
activation buffers every step page-faults them back in each time. Raising
``MALLOC_MMAP_THRESHOLD_`` and ``MALLOC_TRIM_THRESHOLD_`` keeps that memory in
the process. The variables must be set before the process starts, so each
setting runs in its own child process; both run in this one invocation.

    python benchmarks/malloc.py     # -> benchmarks/results/malloc-cpu.md
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import date

from _results import write_result

TUNED = {"MALLOC_MMAP_THRESHOLD_": "33554432", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
# (label, batch, sequence length, d_model, blocks)
CASES = [("XLSTMStack 4 blocks [m,s,m,m], D=128", 16, 512, 128, 4),
         ("XLSTMStack 2 blocks [m,s], D=64", 32, 256, 64, 2)]
STEPS = 5
ROUNDS = 3  # default and tuned alternate; the best of the rounds is reported


def child(batch: int, seq: int, d_model: int, blocks: int) -> float:
    import torch

    from xlstm_ts.models import XLSTMStack

    torch.manual_seed(0)
    stack = XLSTMStack(d_model, blocks, slstm_at=(1,), num_heads=4)
    optimizer = torch.optim.AdamW(stack.parameters())
    x = torch.randn(batch, seq, d_model)

    def step():
        optimizer.zero_grad()
        stack(x).pow(2).mean().backward()
        optimizer.step()

    step()  # warm-up
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    return (time.perf_counter() - start) / STEPS


def run(case: tuple, tuned: bool) -> float:
    env = {k: v for k, v in os.environ.items() if k not in TUNED}
    if tuned:
        env.update(TUNED)
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(case[1:])], env=env,
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        print(child(*json.loads(sys.argv[2])))
        return
    lines = ["# glibc malloc thresholds and CPU training speed", "",
             "Command: `python benchmarks/malloc.py`", f"Date: {date.today()}; "
             f"{os.cpu_count()} cores. Seconds per AdamW training step (forward + backward + "
             f"update), mean of {STEPS} steps after a warm-up, float32. 'tuned' sets "
             + ", ".join(f"`{k}={v}`" for k, v in TUNED.items())
             + f" (as the Makefile does); 'default' unsets them. Best of {ROUNDS} alternating "
             "rounds.",
             "",
             "| model | batch x S | default (s/step) | tuned (s/step) | speed-up |",
             "|---|---|---:|---:|---:|"]
    for case in CASES:
        rounds = [(run(case, False), run(case, True)) for _ in range(ROUNDS)]
        default, tuned = (min(times) for times in zip(*rounds, strict=True))
        lines.append(f"| {case[0]} | {case[1]} x {case[2]} | {default:.3f} | {tuned:.3f} | "
                     f"{default / tuned:.2f}x |")
        print(lines[-1], file=sys.stderr, flush=True)
    text = "\n".join(lines) + "\n"
    write_result("malloc-cpu.md", text)


if __name__ == "__main__":
    main()
