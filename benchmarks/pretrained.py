"""TiRex-2 forecasts on CPU: ours (xlstm_ts.models.tirex2) against NX-AI's tirex-2
package, same full-size random weights, same inputs.

The full-size configuration has the released shapes (embedding 512, patches of 32,
context 2048, horizon 320, 9 quantiles; six blocks, one mLSTM to two sLSTM, 41M
parameters; ``tests/tirex2_reference.full_size``), weights drawn from a seeded
normal, saved as a safetensors checkpoint that both load. Each (implementation,
panel) runs in a fresh process: the first call (the reference compiles its MLPs with
torch.compile there), then the median of ``--repeats`` calls, and the process's
peak resident memory. Panels: 64 series and one series of 2048 steps, horizon 64;
and a horizon of 640 (past the 320 of one pass: the reference truncates it, ours
rolls out), ours only. The largest difference between the two forecasts is
reported relative to the series' std.

    python benchmarks/pretrained.py     # -> benchmarks/results/pretrained-cpu.md
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import torch
from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
CONTEXT = 2048
PANELS = {"64 series, horizon 64": (64, 64), "1 series, horizon 64": (1, 64),
          "64 series, horizon 640 (ours: rollout)": (64, 640)}


def _series(n: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    steps = torch.arange(CONTEXT, dtype=torch.float32)
    return [(torch.cumsum(torch.randn(1, CONTEXT, generator=g), -1)
             + 5 * torch.sin(2 * torch.pi * steps / 24) + 50) for _ in range(n)]


def child(which: str, folder: str, n: int, horizon: int, repeats: int, out: str) -> None:
    torch.set_num_threads(os.cpu_count() or 1)
    ys = _series(n)
    if which == "reference":
        from tirex2.base import load_model
        from tirex2.model.types import TimeseriesType

        model = load_model(folder, device="cpu").model
        batch = [TimeseriesType(target=y, past_covariates=None, future_covariates=None)
                 for y in ys]

        def run():
            return model.predict(batch, horizon)
    else:
        from xlstm_ts.models.tirex2 import SeriesInput, forecast, load_checkpoint

        net = load_checkpoint(folder)
        batch = [SeriesInput(y) for y in ys]

        def run():
            return forecast(net, batch, horizon)

    start = time.perf_counter()
    result = run()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    torch.save({"forecasts": [r.float() for r in result]}, out)
    print(json.dumps({"first_s": first, "median_s": statistics.median(times),
                      "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def _run(which, folder, n, horizon, repeats, tmp):
    out = os.path.join(tmp, f"{which}-{n}-{horizon}.pt")
    done = subprocess.run([sys.executable, __file__, "--child", which, folder, str(n),
                           str(horizon), str(repeats), out], capture_output=True, text=True,
                          check=False)
    if done.returncode:
        raise SystemExit(f"{which} failed:\n{done.stderr[-3000:]}")
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["forecasts"] = torch.load(out, weights_only=True)["forecasts"]
    return row


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        which, folder, n, horizon, repeats, out = sys.argv[2:8]
        child(which, folder, int(n), int(horizon), int(repeats), out)
        return
    repeats = int(sys.argv[sys.argv.index("--repeats") + 1]) if "--repeats" in sys.argv else 7
    from tirex2_reference import full_size, reference_model, save_reference

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                            capture_output=True, check=False).stdout.strip()
    lines = ["# TiRex-2 on CPU: xlstm-ts against the tirex-2 package", "",
             "Command: `python benchmarks/pretrained.py`", "",
             f"Date {date.today()}, commit {commit}, {os.cpu_count()} cores "
             f"({platform.processor() or platform.machine()}), torch {torch.__version__}, "
             f"Python {platform.python_version()}. Full-size random weights (41M "
             f"parameters), context {CONTEXT}; median of {repeats} calls after a first "
             "call, each implementation and panel in a fresh process; peak = the process's "
             "resident high-water mark; deviation = largest |ours - reference| over all "
             "quantiles and steps, relative to the series' std.", "",
             "| panel | reference first s | reference s | ours first s | ours s | speed-up "
             "| reference peak MB | ours peak MB | deviation |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = full_size()
        folder = str(save_reference(reference_model(cfg), cfg, Path(tmp) / "ckpt"))
        for label, (n, horizon) in PANELS.items():
            ours = _run("ours", folder, n, horizon, repeats, tmp)
            if horizon > cfg["future_len"]:
                lines.append(f"| {label} | (truncates to {cfg['future_len']}) | | "
                             f"{ours['first_s']:.2f} | {ours['median_s']:.2f} | | | "
                             f"{ours['peak_mb']:.0f} | |")
                continue
            ref = _run("reference", folder, n, horizon, repeats, tmp)
            scale = statistics.mean(float(y.std()) for y in _series(n))
            deviation = max(float((a - b).abs().max()) for a, b in
                            zip(ref["forecasts"], ours["forecasts"], strict=True)) / scale
            lines.append(f"| {label} | {ref['first_s']:.2f} | {ref['median_s']:.3f} | "
                         f"{ours['first_s']:.2f} | {ours['median_s']:.3f} | "
                         f"{ref['median_s'] / ours['median_s']:.2f}x | {ref['peak_mb']:.0f} | "
                         f"{ours['peak_mb']:.0f} | {deviation:.1e} |")
            print(lines[-1], flush=True)
    write_result("pretrained-cpu.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
