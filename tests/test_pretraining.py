"""Pretraining (issue 46): seeded generators with the structure they promise, a corpus
without the zero-shot yardsticks, and a tiny Lightning pretraining run that learns,
saves, resumes and loads."""

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from xlstm_ts.models.tirex2 import SeriesInput, forecast, load_checkpoint
from xlstm_ts.pretraining import GENERATORS, PretrainConfig, pretrain, tsmixup, write_corpus
from xlstm_ts.pretraining.corpus import sample_window
from xlstm_ts.pretraining.synthetic import (
    PERIODS,
    heteroscedastic,
    intermittent,
    level_shifts,
    multi_seasonal,
    seasonal_profile,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", list(GENERATORS))
def test_generators_are_seeded_finite_and_sized(name):
    a = GENERATORS[name](np.random.default_rng(3), 300)
    b = GENERATORS[name](np.random.default_rng(3), 300)
    c = GENERATORS[name](np.random.default_rng(4), 300)
    assert a.shape == (300,) and np.isfinite(a).all() and a.std() > 0
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _acf(y, lag):
    y = y - y.mean()
    return float((y[:-lag] * y[lag:]).sum() / (y * y).sum())


def test_generators_hold_their_structure():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        seasonal = multi_seasonal(rng, 1000)
        assert max(_acf(seasonal, p) for p in PERIODS) > 0.3
        profile = seasonal_profile(rng, 1000)  # one cycle repeats almost exactly
        assert max(_acf(profile, p) for p in (7, 12, 24, 48, 96, 168)) > 0.5
        demand = intermittent(rng, 1000)
        assert (demand >= 0).all() and np.array_equal(demand, np.round(demand))
        assert (demand == 0).mean() > 0.4
        shifted = level_shifts(rng, 1000)
        plateaus = [np.median(shifted[k:k + 50]) for k in range(0, 1000, 50)]
        assert np.ptp(plateaus) > 3 * 0.3  # jumps beyond the noise
        bursts = np.diff(heteroscedastic(rng, 1000))
        spread = [bursts[k:k + 100].std() for k in range(0, 900, 100)]
        assert max(spread) > 1.5 * min(spread)


def test_tsmixup_is_a_convex_mixture_of_standardised_windows():
    rng = np.random.default_rng(0)
    pool = [np.arange(500.0) ** 1.5, np.sin(np.arange(400) / 5) * 100 + 7]
    mix = tsmixup(rng, 200, pool)
    assert abs(mix.mean()) < 1e-6 and mix.std() <= 1 + 1e-6
    with pytest.raises(ValueError, match="no series in the pool"):
        tsmixup(rng, 1000, pool)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    manifest = write_corpus(folder, synthetic_series=70, length=300, shard_series=30,
                            real_folders=[ROOT / "datasets", ROOT.parent / "shared" / "datasets"])
    return folder, manifest


def test_corpus_holds_no_zero_shot_yardstick_and_only_ett_training_rows(corpus):
    folder, manifest = corpus
    assert set(manifest["excluded"]) == {"m4_hourly", "m3_yearly"}
    rows = pl.concat([pl.read_parquet(folder / s) for s in manifest["shards"]])
    sources = set(rows["source"])
    assert not any(s.startswith(("m4", "m3")) for s in sources)
    assert {"ETTh1.csv", "kernel_synth", "tsmixup"} <= sources
    ett = rows.filter(pl.col("source") == "ETTh1.csv")["values"].list.len()
    assert set(ett) == {8640}  # the protocol's training rows: validation and test unseen
    assert sum(manifest["series"].values()) == len(rows)
    assert json.loads((folder / "manifest.json").read_text()) == manifest


def test_windows_have_random_context_and_horizon():
    rng = np.random.default_rng(0)
    values = np.arange(300.0)
    shapes = set()
    for _ in range(50):
        history, target = sample_window(rng, values, 128, 32, 16)
        seen, ahead = (~np.isnan(history)).sum(), (~np.isnan(target)).sum()
        assert 16 <= seen <= 128 and 1 <= ahead <= 32
        assert np.isnan(history[: 128 - seen]).all() and np.isnan(target[ahead:]).all()
        assert target[0] == history[-1] + 1  # the horizon follows the history
        shapes.add((int(seen), int(ahead)))
    assert len(shapes) > 20


def test_pretraining_learns_saves_resumes_and_loads(corpus, tmp_path):
    folder, _ = corpus
    raw = {"corpus": {"dir": str(folder)},
           "model": {"embedding_dim": 16, "patch_size": 8, "context_len": 64,
                     "future_len": 16, "input_ff_dim": 32, "blocks": ["bi-mlstm", "bi-slstm"],
                     "num_heads": 2},
           "training": {"max_steps": 40, "batch_size": 32, "val_windows": 128,
                        "val_every": 20, "warmup_steps": 5, "learning_rate": 3e-3,
                        "min_context": 8},
           "output": {"dir": "run", "checkpoint": "ckpt"}}
    config = PretrainConfig.from_dict(raw, tmp_path)
    untrained = PretrainConfig.from_dict({**raw, "training": {**raw["training"],
                                                              "max_steps": 1}}, tmp_path / "u")
    first = pretrain(untrained)
    summary = pretrain(config)
    assert summary["steps"] == 40 and summary["val_loss"] < first["val_loss"]
    assert (tmp_path / "run" / "last.ckpt").exists()
    resumed = pretrain(PretrainConfig.from_dict(
        {**raw, "training": {**raw["training"], "max_steps": 50}}, tmp_path))
    assert resumed["steps"] == 50  # went on from step 40
    net = load_checkpoint(tmp_path / "ckpt")
    out = forecast(net, [SeriesInput(torch.sin(torch.arange(100.0) / 4)[None])], 16)[0]
    assert out.shape == (1, 9, 16) and torch.isfinite(out).all()


def test_config_errors_are_all_named_at_once():
    with pytest.raises(ValueError, match=r"unknown section 'modle'.*training\.max_step: unknown"):
        PretrainConfig.from_dict({"modle": {}, "training": {"max_step": 3}})


def test_ddp_pretraining_gives_each_rank_its_own_shards(corpus, tmp_path):
    import subprocess
    import sys

    folder, manifest = corpus
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "scripts" / "ddp_pretrain.py"),
                           str(folder), str(tmp_path)], capture_output=True, text=True,
                          timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    shards = [set(json.loads((tmp_path / f"rank-{r}.json").read_text())["shards"])
              for r in (0, 1)]
    assert shards[0] and shards[1] and not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(manifest["shards"])
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["steps"] == 6 and np.isfinite(summary["val_loss"])
    assert (tmp_path / "ckpt" / "model.safetensors").exists()


def test_the_shipped_checkpoint_loads_offline_and_forecasts(monkeypatch):
    """XLSTMForecaster(network="tirex2", pretrained="xlstm-ts-small"): in the package, no
    network access (the hub is made unreachable)."""
    import pandas as pd

    from xlstm_ts import XLSTMForecaster
    from xlstm_ts.models.tirex2.checkpoint import SHIPPED, shipped_names

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert "xlstm-ts-small" in shipped_names()
    size = sum(f.stat().st_size for f in (SHIPPED / "xlstm-ts-small").iterdir())
    assert size <= 20 * 2 ** 20
    t = np.arange(24 * 30)
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2024-01-01", periods=len(t),
                                                              freq="h"),
                       "y": 50 + 10 * np.sin(2 * np.pi * t / 24)})
    out = XLSTMForecaster(network="tirex2", pretrained="xlstm-ts-small", horizon=24).predict(df)
    truth = 50 + 10 * np.sin(2 * np.pi * np.arange(len(t), len(t) + 24) / 24)
    assert np.abs(out["y_pred"].to_numpy() - truth).mean() < 3.0  # a clean cycle continues
