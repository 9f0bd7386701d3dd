"""Report of a ``mutmut run`` (``make mutation``): killed, survived and timed-out
mutants per module, the survivors with their diffs, and a last line
``mutation score: K killed of M (P%)`` (timeouts and untested mutants are not kills).

    make mutation        # -> benchmarks/results/mutation.md
"""

from __future__ import annotations

import json
import os
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


# Survivors read one by one and found equivalent: (mutant id, text of the mutated line,
# why no input the code accepts can tell the two apart). Matched on both: when the
# function changes, its mutants are renumbered and an entry stops matching, so the
# survivor is listed as "worth a test" until it is read again.
EQUIVALENT = [
    ("xlstm_ts.data.freq.x__mode__mutmut_1", "(values != values[0]).all()",
     "the fast path is an optimisation: the general path returns the same mode"),
    ("xlstm_ts.data.scalers.xǁSeriesScalerǁfit__mutmut_94", "np.maximum(count, 2)",
     "differs only for one observation, whose squared deviation from its mean is 0"),
    ("xlstm_ts.data.scalers.x__segment_quantile__mutmut_18", "np.maximum(count - 1, 1)",
     "differs only for one observation, where both interpolation ends are that value"),
    ("xlstm_ts.data.windows.xǁWindowDatasetǁ__init____mutmut_26", "(1, n) if region is None",
     "horizons start at min_history >= 1 rows anyway, so a region from row 1 is the same"),
    ("xlstm_ts.data.windows.xǁWindowDatasetǁ__getitems____mutmut_30", "np.where(real, rows, 1)",
     "padded positions are zeroed after the read, and a panel with a window has at least "
     "two rows (one of history, one of horizon), so row 1 is as safe to read as row 0"),
    ("xlstm_ts.evaluation.baselines.xǁ_Baselineǁpredict__mutmut_57", "reshape(-2)",
     "NumPy reads any negative size in reshape as 'infer'"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_19", "per_step = None",
     "the arithmetic on physical values is a fast path: the calendar path gives the same "
     "times (the test of the fast path checks both)"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_20", "_physical_step(None)",
     "no dtype has a physical step, so the calendar path runs: the same times"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_25", "dtype=None).cast(last.dtype)",
     "polars infers Int64 for the physical values, which the cast reads as the same times"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_28", ").cast(last.dtype)",
     "polars infers Int64 for the physical values, which the cast reads as the same times"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_35", "repeated, dtype=None).cast",
     "polars infers Int64 for the physical values, which the cast reads as the same times"),
    ("xlstm_ts.data.freq.xǁFrequencyǁfuture__mutmut_38", "repeated, ).cast",
     "polars infers Int64 for the physical values, which the cast reads as the same times"),
    ("xlstm_ts.data.freq.xǁFrequencyǁafter__mutmut_1", "native = None",
     "the numpy path is a fast path: through polars the times are the same"),
    ("xlstm_ts.training.linear_start.x_candidates__mutmut_6", "gram.shape[1]",
     "the gram matrix is square"),
    ("xlstm_ts.training.linear_start.x__sample__mutmut_3", "n >= limit",
     "at n == limit a sorted sample of every row without replacement is every row"),
    ("xlstm_ts.training.linear_start.x__sample__mutmut_8", "replace=None",
     "None is falsy, as False: a sample without replacement either way"),
    ("xlstm_ts.presets.x_cycle_length__mutmut_33", "max(2, 168",
     "steps of at most an hour give 168 hours' worth of steps or more, never below 2"),
    ("xlstm_ts.evaluation.metrics.x_mase__mutmut_28", 'float("NAN")',
     "float() parses NaN in any case"),
    ("xlstm_ts.evaluation.metrics.x_evaluate__mutmut_63", "history = None",
     "history is read only when 'mase' is asked for, and then rebuilt from train_df"),
    ("xlstm_ts.models.heads.xǁQuantileHeadǁ__init____mutmut_18", "persistent=None",
     "None is falsy, as False: the buffer stays out of the state dict either way"),
    ("xlstm_ts.models.heads.xǁQuantileHeadǁquantiles__mutmut_19", ".clamp(None,",
     "an index of 0 wraps to the last level, whose interpolation weight clamps to 1, "
     "so the first level's value comes out either way"),
]


def _equivalent(name: str, diff: str) -> str | None:
    """The reason a survivor is equivalent, if it is one of ``EQUIVALENT``."""
    added = "\n".join(line for line in diff.splitlines()
                      if line.startswith("+") and not line.startswith("+++"))
    for mutant, line, reason in EQUIVALENT:
        if name == mutant and line in added:
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


def _diff(name: str, module: str) -> str:
    """``mutmut show``'s diff of a mutant of ``module`` (a path under the root), read in
    this process (a ``mutmut show`` process per survivor took seconds each)."""
    from mutmut.mutation.diff_apply import get_diff_for_mutant

    return f"# {name}: survived\n" + get_diff_for_mutant(name, path=module).strip()


def main() -> None:
    os.chdir(ROOT)  # mutmut reads mutants/ relative to the working directory
    metas = sorted(MUTANTS.rglob("*.py.meta"))
    if not metas:
        sys.exit("no mutmut results under mutants/: run `make mutation`")
    rows, survivors = [], []
    for meta in metas:
        module = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        codes = json.loads(meta.read_text())["exit_code_by_key"]
        counts = Counter(_status(code) for code in codes.values())
        rows.append((module, counts))
        survivors += [(name, module) for name, code in codes.items()
                      if _status(code) == "survived"]
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
        diffs = {name: _diff(name, module) for name, module in survivors}
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
        for name in sorted(diffs, key=lambda n: order.index(kinds[n])):
            why = [f"Equivalent: {reasons[name]}.", ""] if reasons[name] else []
            lines += [f"### {name} ({kinds[name]})", "", *why, "```diff", diffs[name],
                      "```", ""]
    if total["not checked"]:  # mutants run fastest first: these are the slowest
        lines[4:4] = [f"{total['not checked']} mutants were not checked: the run was "
                      "stopped before them. mutmut runs the mutants whose tests are "
                      "fastest first, so these are the ones with the slowest tests; "
                      "the score below is over the checked ones.", ""]
    score = (f"mutation score: {total['killed']} killed of {checked} "
             f"({100 * total['killed'] / max(checked, 1):.1f}%)")
    lines += ["", score]
    write_result("mutation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
