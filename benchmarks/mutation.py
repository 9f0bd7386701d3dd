"""Report of a ``mutmut run`` (``make mutation``): killed, survived and timed-out
mutants per module, the survivors with their diffs, and a last line
``mutation score: K killed of M (P%)`` (timeouts and untested mutants are not kills).

    make mutation        # -> benchmarks/results/mutation.md
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date
from pathlib import Path

from _results import write_result

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"


def _status(exit_code) -> str:
    from mutmut.stats import status_by_exit_code

    return status_by_exit_code[exit_code]


KINDS = {  # how a surviving mutant is classified (first match wins), and why it survives
    "worth a test": "a behaviour no test pins yet: the next tests to write",
    "dtype dropped": "equivalent for the inputs the API accepts: a dropped `dtype=` or "
                     "`.to(dtype)` leaves values that NumPy/torch promotion turns into "
                     "the same float64 (or float32) result",
    "device dropped": "equivalent on CPU, where the tests run; GPU paths are checked by "
                      "`benchmarks/kernels_gpu.py`",
    "zip strict": "equivalent: `strict=True` on zips whose lengths the code makes equal "
                  "(a guard, not a behaviour)",
    "message wording": "the error is still raised with the same type; tests match the "
                       "part of the message that names the fix, not every word",
    "equivalent": "read one by one: no input the code accepts tells them apart (the "
                  "reason is given with each)",
}


# Survivors read one by one and found equivalent: (mutant name prefix, text of the
# mutated line, why no input the code accepts can tell the two apart). Matched on the
# line, not the mutant's number, which shifts when the function changes.
EQUIVALENT = [
    ("xlstm_ts.data.freq.x__mode", "(values != values[0]).all()",
     "the fast path is an optimisation: the general path returns the same mode"),
    ("xlstm_ts.data.scalers.xǁSeriesScalerǁfit", "np.maximum(count, 2)",
     "differs only for one observation, whose squared deviation from its mean is 0"),
    ("xlstm_ts.data.scalers.x__segment_quantile", "np.maximum(count - 1, 1)",
     "differs only for one observation, where both interpolation ends are that value"),
    ("xlstm_ts.data.windows.xǁWindowDatasetǁ__init__", "(1, n) if region is None",
     "horizons start at min_history >= 1 rows anyway, so a region from row 1 is the same"),
    ("xlstm_ts.data.windows.xǁWindowDatasetǁ__getitems__", "np.where(real, rows, 1)",
     "padded positions are zeroed after the read, and a panel with a window has at least "
     "two rows (one of history, one of horizon), so row 1 is as safe to read as row 0"),
    ("xlstm_ts.evaluation.baselines.xǁ_Baselineǁpredict", "reshape(-2)",
     "NumPy reads any negative size in reshape as 'infer'"),
    ("xlstm_ts.evaluation.metrics.x_mase", 'float("NAN")',
     "float() parses NaN in any case"),
    ("xlstm_ts.evaluation.metrics.x_evaluate", "history = None",
     "history is read only when 'mase' is asked for, and then rebuilt from train_df"),
    ("xlstm_ts.models.heads.xǁQuantileHeadǁ__init__", "persistent=None",
     "None is falsy, as False: the buffer stays out of the state dict either way"),
    ("xlstm_ts.models.heads.xǁQuantileHeadǁquantiles", ".clamp(None,",
     "an index of 0 wraps to the last level, whose interpolation weight clamps to 1, "
     "so the first level's value comes out either way"),
]


def _equivalent(name: str, diff: str) -> str | None:
    """The reason a survivor is equivalent, if it is one of ``EQUIVALENT``."""
    added = "\n".join(line for line in diff.splitlines()
                      if line.startswith("+") and not line.startswith("+++"))
    for prefix, line, reason in EQUIVALENT:
        if name.startswith(prefix) and line in added:
            return reason
    return None


def _kind(diff: str) -> str:
    """The kind of a surviving mutant from its diff (see ``KINDS``)."""
    removed = " ".join(line[1:] for line in diff.splitlines()
                       if line.startswith("-") and not line.startswith("---"))
    added = " ".join(line[1:] for line in diff.splitlines()
                     if line.startswith("+") and not line.startswith("+++"))
    if "strict=" in removed and ("strict=None" in added or "strict=False" in added
                                 or "strict=" not in added):
        return "zip strict"
    if "device" in removed and ("device=None" in added or "device" not in added):
        return "device dropped"
    if ("dtype" in removed or ".to(" in removed or "astype(" in removed) and (
            "dtype=None" in added or ".to(None)" in added or "astype(None)" in added
            or added.count("dtype") < removed.count("dtype")):
        return "dtype dropped"
    if ("raise" in removed or "Error(" in removed or 'f"' in removed) and (
            "XX" in added or "(None)" in added or added.lower() == removed.lower()
            or added.strip() == "None"):
        return "message wording"
    return "worth a test"


def main() -> None:
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        sys.exit("no mutmut results under mutants/: run `make mutation`")
    rows, survivors = [], []
    for meta in metas:
        module = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(_status(code) for code in codes.values())
        rows.append((module, counts))
        survivors += [name for name, code in codes.items() if _status(code) == "survived"]
    total = Counter()
    for _, counts in rows:
        total.update(counts)
    checked = sum(total.values()) - total["not checked"] - total["skipped"]
    lines = ["# Mutation testing", "", f"`make mutation`, {date.today()}: mutmut over the "
             "modules in `[tool.mutmut]` of `pyproject.toml`.", "",
             "| module | mutants | killed | survived | timeout | no tests | not checked |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for module, c in [*rows, ("all", total)]:
        lines.append(f"| {module} | {sum(c.values())} | {c['killed']} | {c['survived']} | "
                     f"{c['timeout']} | {c['no tests']} | {c['not checked']} |")
    if survivors:
        diffs = {name: subprocess.run([sys.executable, "-m", "mutmut", "show", name],
                                      cwd=ROOT, capture_output=True, text=True).stdout.strip()
                 for name in survivors}
        reasons = {name: _equivalent(name, diff) for name, diff in diffs.items()}
        kinds = {name: "equivalent" if reasons[name] else _kind(diff)
                 for name, diff in diffs.items()}
        lines += ["", "## Survivors by kind", "",
                  "| kind | count | why it survives |", "|---|---:|---|"]
        for kind, why in KINDS.items():
            count = sum(k == kind for k in kinds.values())
            if count:
                lines.append(f"| {kind} | {count} | {why} |")
        lines += ["", "## Survivors", "",
                  "Grouped as above; the `worth a test` ones first.", ""]
        order = list(KINDS)
        for name in sorted(survivors, key=lambda n: order.index(kinds[n])):
            why = [f"Equivalent: {reasons[name]}.", ""] if reasons[name] else []
            lines += [f"### {name} ({kinds[name]})", "", *why, "```diff", diffs[name],
                      "```", ""]
    score = (f"mutation score: {total['killed']} killed of {checked} "
             f"({100 * total['killed'] / max(checked, 1):.1f}%)")
    lines += ["", score]
    write_result("mutation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
