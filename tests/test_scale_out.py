"""Scale-out on existing engines: Lightning DDP, Optuna workers on one study, Spark."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
import polars as pl
import pytest

from xlstm_ts import XLSTMForecaster
from xlstm_ts.training import EpochSampler, ShardSampler

ROOT = Path(__file__).resolve().parent.parent
# the child processes import torch: one thread each, so two fit on two cores
CHILD_ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


# ---------------------------------------------------------------- data parallel


@pytest.mark.parametrize("world_size", [2, 3])
def test_rank_shards_split_the_single_process_draw(world_size):
    single = list(EpochSampler(1000, 64 * world_size, seed=7))
    shards = [list(EpochSampler(1000, 64, seed=7, rank=r, world_size=world_size))
              for r in range(world_size)]
    assert all(len(s) == 64 for s in shards)
    # the i-th batch of 16 of every rank together = the i-th batch of 16 x world_size
    for i in range(4):
        together = sorted(x for s in shards for x in s[16 * i:16 * (i + 1)])
        assert together == sorted(single[16 * world_size * i:16 * world_size * (i + 1)])
    sampler = EpochSampler(1000, 64, seed=7, rank=1, world_size=world_size)
    sampler.set_epoch(1)
    assert list(sampler) != shards[1]  # a new epoch draws anew


def test_validation_shards_cover_every_window_once():
    for n, world in [(10, 3), (7, 2), (1, 2)]:
        items = [i for r in range(world) for i in ShardSampler(n, rank=r, world_size=world)]
        assert items == list(range(n))


def test_validation_beyond_the_cap_scores_an_even_spread_of_windows():
    # 100 windows, 8 scored: every 12-13th, the same each epoch, none twice, split by rank
    for world in (1, 3):
        items = [i for r in range(world)
                 for i in ShardSampler(100, rank=r, world_size=world, max_items=8)]
        assert items == [0, 12, 25, 37, 50, 62, 75, 87]
    assert list(ShardSampler(5, max_items=8)) == [0, 1, 2, 3, 4]  # under the cap: all


def test_every_epoch_scores_at_most_the_monitor_cap(monkeypatch):
    from xlstm_ts import datasets
    from xlstm_ts.data import prepare_series, time_split_regions
    from xlstm_ts.training import WindowDataModule, datamodule

    data = prepare_series(datasets.synthetic(n_series=3, length=400, seasonalities=(24,)))
    regions = time_split_regions(data, val_size=200)
    module = WindowDataModule(data, 24, 8, train_region=regions["train"],
                              val_region=regions["val"], batch_size=16)
    assert len(module.val) == 3 * 193
    assert module.monitored.tolist() == list(range(3 * 193))  # under the cap: all
    monkeypatch.setattr(datamodule, "MONITOR_WINDOWS", 100)
    scored = list(module.val_dataloader().sampler)
    assert len(scored) == 100 and len(set(scored)) == 100
    assert min(scored) == 0 and max(scored) > 3 * 193 - 7  # spread over every series
    assert scored == module.monitored.tolist()  # the blend is weighed on the same ones


@pytest.mark.parametrize("env, expected", [
    ({}, True), ({"LOCAL_RANK": "1"}, False), ({"LOCAL_RANK": "0", "NODE_RANK": "1"}, False),
    ({"RANK": "0", "LOCAL_RANK": "0"}, True), ({"RANK": "3"}, False),
    ({"SLURM_PROCID": "2"}, False)])
def test_rank_zero_is_read_from_the_launcher_environment(monkeypatch, env, expected):
    from xlstm_ts.training import is_rank_zero

    for name in ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert is_rank_zero() is expected


def test_other_ranks_write_no_model(monkeypatch, tmp_path):
    from xlstm_ts.cli import _save_model_atomically, write_frame

    df = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=80, freq="h"),
                       "y": np.sin(np.arange(80.0))})
    model = XLSTMForecaster(lookback=16, horizon=4, max_epochs=1, batches_per_epoch=1,
                            progress_bar=False).fit(df)
    monkeypatch.setenv("LOCAL_RANK", "1")
    model.save(tmp_path / "direct")
    _save_model_atomically(model, tmp_path / "cli")
    write_frame(pl.DataFrame({"a": [1]}), tmp_path / "out.csv")
    assert list(tmp_path.iterdir()) == []


def _fit(out: Path, devices: int, batch_size: int) -> dict:
    out.mkdir()
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "ddp_fit.py"),
                           str(out), str(devices), str(batch_size)], env=CHILD_ENV,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "losses.json").read_text())


def test_two_process_ddp_follows_the_single_process_trajectory(tmp_path):
    ddp = _fit(tmp_path / "ddp", devices=2, batch_size=8)
    single = _fit(tmp_path / "single", devices=1, batch_size=16)
    assert len(ddp["train_loss"]) == len(single["train_loss"]) == 3
    np.testing.assert_allclose(ddp["train_loss"], single["train_loss"], rtol=1e-4)
    np.testing.assert_allclose(ddp["val_loss"], single["val_loss"], rtol=1e-4)
    assert ddp["train_loss"][-1] < ddp["train_loss"][0]  # it trained
    # both ranks ran; only rank 0 saved the model and wrote checkpoints
    ranks = [json.loads((tmp_path / "ddp" / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank_zero"] for r in ranks] == [True, False]
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == [
        "best.ckpt", "last.ckpt"]
    model = XLSTMForecaster.load(tmp_path / "ddp" / "model")
    assert model.strategy == "ddp" and model.devices == 2


def test_scale_out_params_are_checked():
    df = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=80, freq="h"),
                       "y": np.arange(80.0)})
    with pytest.raises(ValueError, match="num_nodes"):
        XLSTMForecaster(lookback=16, horizon=4, num_nodes=0).fit(df)
    with pytest.raises(TypeError, match="strategy"):
        XLSTMForecaster(lookback=16, horizon=4, strategy=object()).fit(df)


# ---------------------------------------------------------------- tuning workers

TUNE_CONFIG = """
data:
  path: {data}
  time_col: Date
  target_col: Passengers
model:
  lookback: 24
  horizon: 12
  patch_len: 6
  patch_stride: 3
  max_epochs: 2
  batches_per_epoch: 3
  random_state: 0
tuning:
  n_trials: 3
  pruner: null
  storage: {out}/study.db
  study_name: shared
  search_space:
    d_model: {{type: categorical, choices: [8, 16]}}
    learning_rate: {{type: float, low: 0.001, high: 0.01, log: true}}
output:
  model_dir: {out}/model
"""


def test_two_tuning_workers_share_one_study(tmp_path):
    shutil.copy(ROOT / "datasets" / "airline.csv", tmp_path / "airline.csv")
    config = tmp_path / "tune.yaml"
    config.write_text(TUNE_CONFIG.format(data=tmp_path / "airline.csv", out=tmp_path))
    worker = [sys.executable, "-m", "xlstm_ts", "--quiet", "tune", "--config", str(config),
              "--worker"]
    procs = [subprocess.Popen(worker, env=CHILD_ENV, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    assert not (tmp_path / "model").exists()  # workers write nothing but the study
    study = optuna.load_study(study_name="shared", storage=f"sqlite:///{tmp_path}/study.db")
    numbers = [t.number for t in study.trials]
    assert sorted(numbers) == list(range(6))  # 2 workers x 3 trials, each numbered once
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # the final call runs no trial and refits the best of both workers' trials
    from xlstm_ts.cli import main

    assert main(["--quiet", "tune", "--config", str(config), "--n-trials", "0"]) == 0
    best = json.loads((tmp_path / "model" / "best_params.json").read_text())
    assert best["best_score"] == pytest.approx(study.best_value)
    assert len(optuna.load_study(study_name="shared",
                                 storage=f"sqlite:///{tmp_path}/study.db").trials) == 6


def test_worker_needs_a_shared_study(tmp_path):
    from xlstm_ts.tuning import tune

    df = pd.DataFrame({"ds": pd.date_range("2024-01-01", periods=80, freq="h"),
                       "y": np.arange(80.0)})
    with pytest.raises(ValueError, match="storage"):
        tune(df, n_trials=1, worker=True, horizon=4, lookback=16)
