"""Streaming a TiRex-2 network on CPU: one new step, then a forecast, from the carried
stream (``TiRex2Stream.update`` + ``forecast``) against re-encoding the context
(``forecast``), timed in alternating rounds of the same minutes.

Networks: the full-size shapes with seeded random weights (as ``pretrained.py``:
context 2048, patches of 32, 41M parameters) and the shipped ``xlstm-ts-small``.
Panels of 1 and 64 series, horizon 64. Before timing, the stream is updated one step
at a time through a whole patch, so every phase of the patch grid holds its state
(the steady state of one-step updates); a step then advances one token per block.
The stream's state size is reported per series.

    python benchmarks/pretrained_stream.py   # -> benchmarks/results/pretrained-stream-cpu.md
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
HORIZON, ROUNDS = 64, 7


def _bench(net, n: int) -> dict:
    from xlstm_ts.models.tirex2 import SeriesInput, forecast
    from xlstm_ts.models.tirex2.stream import TiRex2Stream

    cfg = net.config
    P, C = cfg.patch_size, cfg.context_len
    g = torch.Generator().manual_seed(0)
    total = C + 2 * P + 4 * ROUNDS
    steps = torch.arange(total, dtype=torch.float32)
    data = torch.cumsum(torch.randn(n, total, generator=g), -1) \
        + 5 * torch.sin(2 * torch.pi * steps / 24) + 50
    end = C
    stream = TiRex2Stream.start(net, [SeriesInput(data[k:k + 1, :end]) for k in range(n)])
    for _ in range(P):  # every phase encoded once
        stream = stream.update(net, [SeriesInput(data[k:k + 1, end:end + 1]) for k in range(n)])
        end += 1
    streamed, encoded = [], []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        stream = stream.update(net, [SeriesInput(data[k:k + 1, end:end + 1]) for k in range(n)])
        stream.forecast(net, HORIZON)
        streamed.append(time.perf_counter() - t0)
        end += 1
        t0 = time.perf_counter()
        forecast(net, [SeriesInput(data[k:k + 1, end - C:end]) for k in range(n)], HORIZON)
        encoded.append(time.perf_counter() - t0)
    state = sum(t.numel() * t.element_size() for t in stream.to_state().values())
    s, e = statistics.median(streamed), statistics.median(encoded)
    return {"stream_s": s, "encode_s": e, "speedup": e / s, "state_mb": state / n / 2 ** 20,
            "phases": len(stream.phases)}


def main() -> None:
    from tirex2_reference import full_size

    from xlstm_ts.models.tirex2 import TiRex2Config, TiRex2Network, load_checkpoint

    torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(0)
    nets = {"full size, random weights": TiRex2Network(TiRex2Config.from_dict(full_size())),
            "xlstm-ts-small": load_checkpoint("xlstm-ts-small")}
    rows = []
    for name, net in nets.items():
        net.eval()
        for n in (1, 64):
            r = _bench(net, n)
            rows.append(f"| {name} | {n} | {r['encode_s']:.4f} | {r['stream_s']:.4f} | "
                        f"{r['speedup']:.1f}x | {r['phases']} | {r['state_mb']:.2f} |")
            print(rows[-1], flush=True)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    text = "\n".join([
        "# TiRex-2 streaming on CPU: one new step, then a forecast", "",
        "Command: `python benchmarks/pretrained_stream.py`", "",
        f"Date {date.today()}, commit {commit}, {os.cpu_count()} cores "
        f"({platform.machine()}), torch {torch.__version__}. Horizon {HORIZON}; median of "
        f"{ROUNDS} alternating rounds after every phase of the patch grid was read once "
        "(one-step updates through a whole patch). Re-encode = `forecast` of each series' "
        "last `context_len` steps; stream = `TiRex2Stream.update` by one step, then "
        "`forecast`. State = the stream's tensors per series (history since the anchor "
        "included).", "",
        "| network | series | re-encode s | stream s | speed-up | phases kept "
        "| state MB / series |",
        "|---|---:|---:|---:|---:|---:|---:|", *rows, ""])
    write_result("pretrained-stream-cpu.md", text)


if __name__ == "__main__":
    main()
