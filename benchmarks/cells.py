"""Time and peak memory of forward + backward for the xLSTM cells on CPU.

Each (kernel, S) runs in a fresh child process, so the peak resident memory it
reports (``ru_maxrss`` minus the resident size just before the run) belongs to
that kernel alone. Baselines are measured in the same run: the quadratic
parallel form for the chunkwise mLSTM, a plain autograd loop for the sLSTM, and
the official ``mlstm-kernels`` native chunkwise kernels when installed
(``pip install -e ".[bench]"``).

    python benchmarks/cells.py                       # full table -> benchmarks/results/cells-cpu.md
    python benchmarks/cells.py --seq-lens 256 1024   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F
from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
MEMORY_BUDGET_GB = 16.0  # skip runs extrapolated to need more (the machine has 24 GiB)
CHILD_TIMEOUT_S = 600

# name -> (label, memory growth exponent in S, used to extrapolate skips)
KERNELS = {
    "mlstm-chunkwise": ("mLSTM chunkwise (ours, L=64)", 1),
    "mlstm-parallel": ("mLSTM parallel (ours)", 2),
    "mlstm-recurrent": ("mLSTM recurrent (ours)", 1),
    "nx-chunkwise-autograd": ("mLSTM chunkwise, mlstm-kernels native_autograd", 1),
    "nx-chunkwise-custbw": ("mLSTM chunkwise, mlstm-kernels native_custbw", 1),
    "slstm": ("sLSTM (ours, hand-written backward)", 1),
    "slstm-autograd-loop": ("sLSTM plain autograd loop (baseline)", 1),
}


def have_mlstm_kernels() -> bool:
    try:
        import mlstm_kernels  # noqa: F401
    except ImportError:
        return False
    return True


# --------------------------------------------------------------------------- child side


def slstm_autograd_loop(gates_x: torch.Tensor, R: torch.Tensor) -> torch.Tensor:
    """The straightforward implementation: the equations in a Python loop under autograd."""
    B, _, _, NH, DH = gates_x.shape
    h = gates_x.new_zeros(B, NH, DH)
    c, n, m = h, h, torch.full_like(h, float("-inf"))
    outputs = []
    for gates_t in gates_x.unbind(1):  # unbind once: per-step indexing is O(S^2) in backward
        i_, f_, z_, o_ = (gates_t + torch.einsum("bkd,gkde->bgke", h, R)).unbind(1)
        log_f = F.logsigmoid(f_)
        m_new = torch.maximum(log_f + m, i_)
        i_s, f_s = torch.exp(i_ - m_new), torch.exp(log_f + m - m_new)
        c = f_s * c + i_s * torch.tanh(z_)
        n = f_s * n + i_s
        h = torch.sigmoid(o_) * c / n
        m = m_new
        outputs.append(h)
    return torch.stack(outputs, dim=1)


def make_case(kernel: str, B: int, NH: int, S: int, DH: int):
    """Return (inputs requiring grad, function running the forward)."""
    from xlstm_ts.cells import mlstm, slstm

    if kernel.startswith("slstm"):
        gates_x = torch.randn(B, S, 4, NH, DH, requires_grad=True)
        R = (torch.randn(4, NH, DH, DH) / DH**0.5).requires_grad_()
        fn = slstm if kernel == "slstm" else slstm_autograd_loop
        return [gates_x, R], lambda: fn(gates_x, R)

    q, k, v = (torch.randn(B, NH, S, DH, requires_grad=True) for _ in range(3))
    i = torch.randn(B, NH, S, requires_grad=True)
    f = (torch.randn(B, NH, S) + 3).requires_grad_()
    inputs = [q, k, v, i, f]
    if kernel.startswith("mlstm-"):
        form = kernel.removeprefix("mlstm-")
        return inputs, lambda: mlstm(q, k, v, i, f, form=form, chunk_size=64)
    from mlstm_kernels.torch.chunkwise import registry

    fn = registry["native_autograd" if kernel.endswith("autograd") else "native_custbw"]
    return inputs, lambda: fn(q, k, v, i, f, chunk_size=64)


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


QUICK_S = 20.0  # runs faster than this are repeated: warm-up, then the median of 3


def child(kernel: str, B: int, NH: int, S: int, DH: int) -> dict:
    torch.manual_seed(0)
    inputs, forward = make_case(kernel, B, NH, S, DH)

    def fwd_bwd() -> float:
        start = time.perf_counter()
        forward().sum().backward()
        for x in inputs:
            x.grad = None
        return time.perf_counter() - start

    rss_before = rss_kb()
    first = fwd_bwd()  # pays first-touch page faults and lazy initialisation
    times = [fwd_bwd() for _ in range(3)] if first < QUICK_S else [first]
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"time_s": sorted(times)[len(times) // 2], "peak_mb": (peak_kb - rss_before) / 1024,
            "runs": len(times)}


# --------------------------------------------------------------------------- parent side


def run_child(kernel, S, args) -> dict:
    cmd = [sys.executable, __file__, "--child", kernel, "--batch", str(args.batch),
           "--heads", str(args.heads), "--head-dim", str(args.head_dim), "--seq-lens", str(S)]
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
                             check=True)
    except subprocess.TimeoutExpired:
        return {"skipped": f"timeout > {CHILD_TIMEOUT_S} s"}
    except subprocess.CalledProcessError as err:
        return {"skipped": "failed: " + err.stderr.strip().splitlines()[-1][:80]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def agreement_with_mlstm_kernels() -> float:
    """Max |ours - mlstm-kernels| on one float64 input (both chunkwise, S = 256)."""
    from mlstm_kernels.torch.chunkwise import registry

    from xlstm_ts.cells import mlstm

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 256, 32, generator=g, dtype=torch.float64) for _ in range(3))
    i = torch.randn(2, 4, 256, generator=g, dtype=torch.float64)
    f = torch.randn(2, 4, 256, generator=g, dtype=torch.float64) + 3
    theirs = registry["native_autograd"](q, k, v, i, f, chunk_size=64)
    return (mlstm(q, k, v, i, f) - theirs).abs().max().item()


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}")


def cell(result: dict, key: str, fmt: str) -> str:
    return result["skipped"] if "skipped" in result else format(result[key], fmt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--head-dim", type=int, default=64)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/cells-cpu.md")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.child, args.batch, args.heads, args.seq_lens[0],
                               args.head_dim)))
        return

    kernels = [k for k in KERNELS if have_mlstm_kernels() or not k.startswith("nx-")]
    results: dict[str, dict[int, dict]] = {k: {} for k in kernels}
    for kernel in kernels:
        growth = KERNELS[kernel][1]
        previous = None
        for S in sorted(args.seq_lens):
            if previous and "peak_mb" in previous[1]:
                estimate_gb = previous[1]["peak_mb"] * (S / previous[0]) ** growth / 1024
                if estimate_gb > MEMORY_BUDGET_GB:
                    results[kernel][S] = {"skipped": f"skipped (est. {estimate_gb:.0f} GB)"}
                    continue
            results[kernel][S] = run_child(kernel, S, args)
            previous = (S, results[kernel][S])
            print(f"{kernel:<24} S={S:<6} {results[kernel][S]}", file=sys.stderr, flush=True)

    seqs = sorted(args.seq_lens)
    lines = [
        "# Cells on CPU: forward + backward",
        "",
        f"Command: `{' '.join(['python benchmarks/cells.py', *sys.argv[1:]])}` "
        "(`make bench-cells` runs it with the Makefile's malloc settings)",
        f"Date: {date.today()}; machine: {machine()}.",
        f"Shapes: B={args.batch}, NH={args.heads}, DH={args.head_dim} (DQK = DV), float32; "
        f"one warm-up run, then the median of 3 when the warm-up took under {QUICK_S:.0f} s "
        "(otherwise the warm-up's time, a cold run). "
        "Peak memory: resident-set high-water mark of a fresh process minus its size before "
        f"the run. Runs extrapolated to need more than {MEMORY_BUDGET_GB:.0f} GB are skipped.",
        "",
        "## Time (s)",
        "",
        "| kernel | " + " | ".join(f"S={s}" for s in seqs) + " |",
        "|---|" + "---:|" * len(seqs),
    ]
    for kernel in kernels:
        row = [cell(results[kernel][s], "time_s", ".3f") for s in seqs]
        lines.append(f"| {KERNELS[kernel][0]} | " + " | ".join(row) + " |")
    lines += ["", "## Peak memory (MB)", "",
              "| kernel | " + " | ".join(f"S={s}" for s in seqs) + " |",
              "|---|" + "---:|" * len(seqs)]
    for kernel in kernels:
        row = [cell(results[kernel][s], "peak_mb", ".0f") for s in seqs]
        lines.append(f"| {KERNELS[kernel][0]} | " + " | ".join(row) + " |")

    def ratio(a: str, b: str, s: int) -> str:
        ra, rb = results[a].get(s, {}), results[b].get(s, {})
        if "time_s" in ra and "time_s" in rb:
            return f"{rb['time_s'] / ra['time_s']:.2f}x"
        return "n/a"

    lines += ["", "## Speed-ups (time of baseline / time of ours, same run)", "",
              "| comparison | " + " | ".join(f"S={s}" for s in seqs) + " |",
              "|---|" + "---:|" * len(seqs)]
    pairs = [("mlstm-chunkwise", "mlstm-parallel", "chunkwise vs parallel"),
             ("mlstm-chunkwise", "mlstm-recurrent", "chunkwise vs recurrent"),
             ("slstm", "slstm-autograd-loop", "sLSTM hand-written backward vs autograd loop")]
    if have_mlstm_kernels():
        pairs += [("mlstm-chunkwise", "nx-chunkwise-custbw",
                   "chunkwise vs mlstm-kernels native_custbw"),
                  ("mlstm-chunkwise", "nx-chunkwise-autograd",
                   "chunkwise vs mlstm-kernels native_autograd")]
    for ours, base, label in pairs:
        lines.append(f"| {label} | " + " | ".join(ratio(ours, base, s) for s in seqs) + " |")

    # Linear cost means t(4 S) / t(S) = 4; more is cache and page-fault overhead.
    quadruples = [(s, 4 * s) for s in seqs if 4 * s in seqs]
    if quadruples:
        lines += ["", "## Scaling: t(4 S) / t(S), same kernel", "",
                  "| kernel | " + " | ".join(f"S={a}->{b}" for a, b in quadruples) + " |",
                  "|---|" + "---:|" * len(quadruples)]
        for kernel in kernels:
            if KERNELS[kernel][1] == 1:
                row = [f"{results[kernel][b]['time_s'] / results[kernel][a]['time_s']:.2f}"
                       if "time_s" in results[kernel].get(a, {})
                       and "time_s" in results[kernel].get(b, {}) else "n/a"
                       for a, b in quadruples]
                lines.append(f"| {KERNELS[kernel][0]} | " + " | ".join(row) + " |")

    if have_mlstm_kernels():
        lines += ["", f"Agreement with mlstm-kernels (float64, S=256, chunkwise): "
                      f"max |difference| = {agreement_with_mlstm_kernels():.1e}."]
    text = "\n".join(lines) + "\n"
    write_result("cells-cpu.md", text, args.out)


if __name__ == "__main__":
    main()
