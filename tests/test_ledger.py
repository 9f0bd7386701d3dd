"""The test ledger (issue 47): benchmarks read a test split only with --final, and
every such read is logged before it runs."""

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _ledger  # noqa: E402
import accuracy  # noqa: E402


def _panel(lengths=(10, 12)) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": range(n), "y": range(n)})
                       for i, n in enumerate(lengths)], ignore_index=True)
    test = train.assign(ds=train["ds"] + 100, y=-1)
    return train, test


def test_a_final_read_is_logged_with_commit_and_datasets(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    entry = _ledger.record_test_read("accuracy.py ett", ["ETTh1"], "defaults",
                                     ledger=ledger, horizons=[96])
    _ledger.record_test_read("derived.py", ["sunspots", "ETTh1"], "x", ledger=ledger)
    lines = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert lines[0] == entry
    assert len(entry["commit"].split("+")[0]) == 40 and entry["horizons"] == [96]
    assert entry["time"].endswith("+00:00")
    assert _ledger.read_counts(ledger) == {"ETTh1": 2, "sunspots": 1}


def test_exploration_never_reads_the_test_split(tmp_path, monkeypatch):
    ledger = tmp_path / "ledger.jsonl"
    monkeypatch.setattr(accuracy, "record_test_read",
                        lambda *a, **k: _ledger.record_test_read(*a, ledger=ledger, **k))
    train, test = _panel()
    args = argparse.Namespace(final=False, what="m3", set=[], seeds=[0])
    fit, scored = accuracy._split("M3-Yearly", train, test, 3, args)
    assert not ledger.exists()
    assert (scored["y"] >= 0).all() and len(scored) == 6  # the last 3 of each series
    assert fit.groupby("unique_id").size().tolist() == [7, 9]
    assert fit.merge(scored, on=["unique_id", "ds"]).empty

    fit, scored = accuracy._split("M3-Yearly", train, test, 3, argparse.Namespace(
        final=True, what="m3", set=[], seeds=[0]))
    assert scored is test and fit is train
    assert _ledger.read_counts(ledger) == {"M3-Yearly": 1}


@pytest.mark.parametrize("command", [["ett"], ["m4"], ["m3"], ["floor"]])
def test_every_accuracy_command_has_the_final_switch(command, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["accuracy.py", *command, "--help"])
    with pytest.raises(SystemExit):
        accuracy.main()
    assert "--final" in capsys.readouterr().out
