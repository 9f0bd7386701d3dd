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
        lines += ["", "## Survivors", ""]
        for name in survivors:
            diff = subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=ROOT,
                                  capture_output=True, text=True).stdout.strip()
            lines += [f"### {name}", "", "```diff", diff, "```", ""]
    score = (f"mutation score: {total['killed']} killed of {checked} "
             f"({100 * total['killed'] / max(checked, 1):.1f}%)")
    lines += ["", score]
    write_result("mutation.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
