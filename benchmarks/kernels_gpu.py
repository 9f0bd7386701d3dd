"""Triton kernels vs the PyTorch reference (and NX-AI mlstm-kernels) on a GPU.

Forward + backward time (CUDA events, median of repeats after warm-up), peak
memory, tokens/s and achieved TFLOP/s for

- mLSTM chunkwise: B=8, NH=8, DQK=DV=128, bf16 inputs; ours (``backend="triton"``),
  the PyTorch reference (``backend="torch"``, float32 compute) and, when installed,
  ``mlstm_kernels``' ``chunkwise--triton_xl_chunk`` (its default chunk size 128);
- sLSTM: B=8, NH=8, DH=64, bf16 inputs; ours vs the PyTorch loop with its
  hand-written backward (float32 compute).

S in {1024, 4096, 16384}. mLSTM FLOPs are counted as 3x the forward's matmul
FLOPs (per chunk of L: 2L^2(DQK+DV) intra, 4 L DQK DV for the state's share and
update), sLSTM's as 3x the recurrent matmuls (2 * 4 DH^2 per token and head).
Without CUDA it prints a note and exits 0.

    python benchmarks/kernels_gpu.py    # -> benchmarks/results/kernels-<gpu>.md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from datetime import date

import torch
from _results import write_result

PEER = os.environ.get("XLSTM_TS_PEER_KERNEL", "chunkwise--triton_xl_chunk")


def _time(fn, reps: int) -> tuple[float, float]:
    """Median seconds of fn() and peak memory (GiB) over reps runs after one warm-up."""
    fn()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times), (torch.cuda.max_memory_allocated() - base) / 2**30


def _mlstm_case(S: int, which: str):
    from xlstm_ts.cells import mlstm

    B, NH, D = 8, 8, 128
    g = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (torch.randn(B, NH, S, D, device="cuda", generator=g, dtype=torch.bfloat16)
               .requires_grad_() for _ in range(3))
    i = torch.randn(B, NH, S, device="cuda", generator=g).requires_grad_()
    f = (torch.randn(B, NH, S, device="cuda", generator=g) + 3).requires_grad_()
    if which == "nx":
        from mlstm_kernels.torch import get_mlstm_kernel

        kernel = get_mlstm_kernel(PEER)

        def run():
            kernel(q, k, v, i.to(q.dtype), f.to(q.dtype)).sum().backward()
    else:
        def run():
            mlstm(q, k, v, i, f, backend=which).float().sum().backward()
    return run, B * S


def _slstm_case(S: int, which: str):
    from xlstm_ts.cells import slstm

    B, NH, DH = 8, 8, 64
    g = torch.Generator(device="cuda").manual_seed(0)
    gates_x = torch.randn(B, S, 4, NH, DH, device="cuda", generator=g,
                          dtype=torch.bfloat16).requires_grad_()
    R = (0.1 * torch.randn(4, NH, DH, DH, device="cuda", generator=g)).to(
        torch.bfloat16).requires_grad_()

    def run():
        slstm(gates_x, R, backend=which).float().sum().backward()
    return run, B * S


def _stack_case(S: int, which: str):
    """A whole XLSTMStack (d_model 256, blocks [m, s, m, m], 4 heads), bf16 autocast."""
    from xlstm_ts.models import XLSTMStack

    torch.manual_seed(0)
    stack = XLSTMStack(256, 4, slstm_at=(1,), num_heads=4, backend=which).cuda()
    x = torch.randn(16, S, 256, device="cuda")

    def run():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            stack(x).float().sum().backward()
    return run, 16 * S


def _flops(cell: str, S: int) -> float:
    if cell == "mlstm":
        B, NH, D, L = 8, 8, 128, 64
        per_token = 2 * L * (D + D) + 4 * D * D
        return 3 * B * NH * S * per_token
    B, NH, DH = 8, 8, 64
    return 3 * B * NH * S * 2 * 4 * DH * DH


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seq-lens", type=int, nargs="+", default=[1024, 4096, 16384])
    parser.add_argument("--cells", nargs="+", default=["mlstm", "slstm", "stack"])
    parser.add_argument("--impls", nargs="+", default=["triton", "torch", "nx"])
    parser.add_argument("--name", help="results file name (default kernels-<gpu>.md)")
    parser.add_argument("--slow-max", type=int, default=16384,
                        help="longest S for the PyTorch sLSTM loop (slow)")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("kernels_gpu.py: no CUDA device here; nothing to measure (skipped).")
        return
    try:
        import mlstm_kernels  # noqa: F401
        have_nx = True
    except ImportError:
        have_nx = False
    name = torch.cuda.get_device_name()
    rows = []
    for cell, impls in (("mlstm", ["triton", "torch", *(["nx"] if have_nx else [])]),
                        ("slstm", ["triton", "torch"]), ("stack", ["triton", "torch"])):
        if cell not in args.cells:
            continue
        for S in args.seq_lens:
            for which in [w for w in impls if w in args.impls]:
                if cell != "mlstm" and which == "torch" and S > args.slow_max:
                    continue
                if cell == "stack" and S > 4096:
                    continue
                make = {"mlstm": _mlstm_case, "slstm": _slstm_case, "stack": _stack_case}[cell]
                try:
                    run, tokens = make(S, which)
                    reps = 1 if (cell != "mlstm" and which == "torch") else 5
                    seconds, peak = _time(run, reps)
                except Exception as err:  # record and go on: one failure must not lose the rest
                    print(f"{cell} {which} S={S}: {type(err).__name__}: {err}"[:300], flush=True)
                    rows.append((cell, which, S, None, None, None, type(err).__name__))
                    torch.cuda.empty_cache()
                    continue
                flops = _flops(cell, S) / seconds / 1e12 if cell != "stack" else float("nan")
                rows.append((cell, which, S, seconds, peak, tokens / seconds, flops))
                print(rows[-1], flush=True)
                torch.cuda.empty_cache()
    label = {"triton": "xlstm-ts Triton", "torch": "xlstm-ts PyTorch reference",
             "nx": f"mlstm-kernels {PEER}"}
    lines = [
        f"# Triton kernels on {name}", "",
        "Command: `python benchmarks/kernels_gpu.py " + " ".join(sys.argv[1:]) + "`",
        f"Date: {date.today()}; torch {torch.__version__}, triton "
        f"{__import__('triton').__version__}; forward + backward, bf16 inputs, "
        "median of 5 (PyTorch sLSTM loop: 1) after a warm-up. mLSTM B=8 NH=8 D=128; "
        "sLSTM B=8 NH=8 DH=64; stack: XLSTMStack d_model 256, [m, s, m, m], B=16, bf16 "
        "autocast. TFLOP/s from the matmul FLOP model in the script's docstring.",
        "", "| cell | implementation | S | seconds | peak GiB | tokens/s | TFLOP/s |",
        "|---|---|---:|---:|---:|---:|---:|"]
    for cell, which, S, seconds, peak, tps, tflops in rows:
        if seconds is None:
            lines.append(f"| {cell} | {label[which]} | {S} | failed: {tflops} | | | |")
            continue
        lines.append(f"| {cell} | {label[which]} | {S} | {seconds:.4f} | {peak:.2f} | "
                     f"{tps:,.0f} | {tflops:.1f} |")
    lines += ["", "Ratios (same S):", ""]
    times = {(c, w, S): t for c, w, S, t, *_ in rows if t}
    for S in args.seq_lens:
        parts = []
        for cell, base in (("mlstm", "torch"), ("mlstm", "nx"), ("slstm", "torch"),
                           ("stack", "torch")):
            if (cell, "triton", S) in times and (cell, base, S) in times:
                ratio = times[(cell, base, S)] / times[(cell, "triton", S)]
                parts.append(f"{cell} Triton vs {label[base]}: {ratio:.2f}x")
        if parts:
            lines.append(f"- S={S}: " + "; ".join(parts))
    slug = "h200" if "H200" in name else name.lower().replace(" ", "-")
    write_result(args.name or f"kernels-{slug}.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
