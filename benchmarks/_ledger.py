"""The test ledger: every read of a test split, one JSON line each.

Benchmarks explore on validation rows by default; a test split is scored only with
``--final``, and each such run first appends what it reads to
``benchmarks/results/test-ledger.jsonl`` (commit, UTC time, script, setup,
datasets, command), so the number of reads of each test split is on record. A read
is logged before it runs: a run that fails after reading still counts.

    python benchmarks/_ledger.py       # reads of each test split, from the ledger
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from _results import RESULTS

LEDGER = RESULTS / "test-ledger.jsonl"
ROOT = Path(__file__).resolve().parent.parent

FINAL_HELP = ("score the test split (once per decision; logged in "
              "benchmarks/results/test-ledger.jsonl); without it, validation rows only")


def add_final_flag(parser: argparse.ArgumentParser) -> None:
    """``--final``: the switch every benchmark that can read a test split uses."""
    parser.add_argument("--final", action="store_true", help=FINAL_HELP)


def _commit() -> str:
    """HEAD's hash, with ``+dirty`` when tracked files differ from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    return head + ("+dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


def record_test_read(script: str, datasets: list[str], setup: str, *,
                     ledger: Path = LEDGER, **details) -> dict:
    """Append one read of the test splits of ``datasets`` to the ledger; returns it."""
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "commit": _commit(), "script": script, "setup": setup,
             "datasets": list(datasets), "command": " ".join(sys.argv), **details}
    ledger.parent.mkdir(parents=True, exist_ok=True)
    with open(ledger, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return entry


def read_counts(ledger: Path = LEDGER) -> Counter:
    """How many ledger entries read each dataset's test split."""
    counts: Counter = Counter()
    if ledger.exists():
        for line in ledger.read_text().splitlines():
            if line.strip():
                counts.update(json.loads(line)["datasets"])
    return counts


if __name__ == "__main__":
    for name, count in sorted(read_counts().items()):
        print(f"{name}: {count}")
