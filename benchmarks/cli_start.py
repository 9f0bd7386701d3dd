"""Start-up of a scheduled forecast: `xlstm-ts predict` on a saved model, cold, in a
fresh process each time, against the same command at an earlier commit (checked out
into a temporary worktree) in the same run.

A small model (airline, lookback 36, horizon 12, d_model 16) is fitted once and
saved; each side then runs ``predict --model M --input airline.csv --output F`` five
times, alternating; reported: the median wall time and the median peak resident
memory (the child's high-water mark), and which heavy packages the command imported.
Then, with this checkout only, the scheduled step: one new month arrives, and either
the whole history is re-forecast (``predict --input`` the full file) or the new row is
absorbed (``predict --update --input`` the new row; each run on a fresh copy of the
model saved before it, so every run absorbs one month).

    python benchmarks/cli_start.py [BASELINE_COMMIT]   # -> results/cli-start-cpu.md
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "93763e1"  # main before this round's lazy imports
PROBE = """
import json, os, resource, sys, time
start = time.perf_counter()
# this checkout's editable install would win over PYTHONPATH: the baseline's sources first
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__module__]
sys.path.insert(0, os.environ["XLSTM_SOURCE"])
from xlstm_ts.cli import main
code = main(sys.argv[1:])
heavy = [m for m in ("lightning", "mlflow", "optuna", "matplotlib", "pyspark") if m in sys.modules]
where = sys.modules["xlstm_ts"].__file__
print(json.dumps({"code": code, "seconds": time.perf_counter() - start, "heavy": heavy,
                  "source": where,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _run(source: Path, args: list[str]) -> dict:
    env = {**os.environ, "XLSTM_SOURCE": str(source)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PROBE, "--quiet", *args], env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    row = json.loads(done.stdout.strip().splitlines()[-1])
    return {**row, "wall": wall}


def _scheduled_step(df, tmp: Path, model) -> dict:
    """Wall times of re-forecasting the whole history with one new month against
    ``--update`` with that month alone (each on a fresh copy of the saved model)."""
    import shutil

    known, new = df.iloc[:-1], df.iloc[-1:]
    model.fit(known)
    model.save(tmp / "known")
    df.to_csv(tmp / "all.csv", index=False)
    new.to_csv(tmp / "new.csv", index=False)
    names = {"re-forecast from the whole file": [], "--update with the new month": []}
    for _ in range(5):
        names["re-forecast from the whole file"].append(_run(ROOT, [
            "predict", "--model", str(tmp / "known"), "--input", str(tmp / "all.csv"),
            "--output", str(tmp / "full.csv")]))
        shutil.rmtree(tmp / "copy", ignore_errors=True)
        shutil.copytree(tmp / "known", tmp / "copy")
        names["--update with the new month"].append(_run(ROOT, [
            "predict", "--model", str(tmp / "copy"), "--input", str(tmp / "new.csv"),
            "--update", "--output", str(tmp / "step.csv")]))
    return names


def main() -> None:
    baseline = sys.argv[1] if len(sys.argv) > 1 else BASELINE
    sys.path.insert(0, str(ROOT))
    from xlstm_ts import XLSTMForecaster, datasets

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old = tmp / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), baseline], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            df = datasets.load_airline()
            df.to_csv(tmp / "airline.csv", index=False)
            model = XLSTMForecaster(lookback=36, horizon=12, d_model=16, max_epochs=1,
                                    progress_bar=False, random_state=0).fit(df)
            model.save(tmp / "model")
            args = ["predict", "--model", str(tmp / "model"), "--input",
                    str(tmp / "airline.csv"), "--output", str(tmp / "out.csv")]
            runs = {"before": [], "now": []}
            for _ in range(5):  # alternating: both sides over the same minutes
                runs["before"].append(_run(old, args))
                runs["now"].append(_run(ROOT, args))
            steps = _scheduled_step(df, tmp, model)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           check=False, capture_output=True)
    lines = ["# CLI start-up: `xlstm-ts predict` on a saved model (CPU)", "",
             f"Command: `python benchmarks/cli_start.py {baseline}`; {date.today()}, "
             f"{os.cpu_count()} cores. Median of 5 cold runs each, alternating; wall = the "
             "whole process, in-process = from importing the CLI to its exit code.", "",
             "| code | wall s | in-process s | peak MB | heavy packages imported |",
             "|---|---:|---:|---:|---|"]
    for name, label in (("before", f"before ({baseline})"), ("now", "now")):
        r = runs[name]
        lines.append(f"| {label} | {statistics.median(x['wall'] for x in r):.2f} | "
                     f"{statistics.median(x['seconds'] for x in r):.2f} | "
                     f"{statistics.median(x['peak_mb'] for x in r):.0f} | "
                     f"{', '.join(r[-1]['heavy']) or 'none'} |")
    lines += ["", "One new month, this checkout (median of 5 cold runs, alternating):", "",
              "| command | wall s | in-process s | peak MB |", "|---|---:|---:|---:|"]
    for name, r in steps.items():
        lines.append(f"| {name} | {statistics.median(x['wall'] for x in r):.2f} | "
                     f"{statistics.median(x['seconds'] for x in r):.2f} | "
                     f"{statistics.median(x['peak_mb'] for x in r):.0f} |")
    write_result("cli-start-cpu.md", "\n".join(lines) + "\n")
    print(json.dumps({k: [round(x["wall"], 2) for x in v] for k, v in runs.items()}))


if __name__ == "__main__":
    main()
