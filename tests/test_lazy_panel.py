"""Panels read lazily (issue 46, item 2): a polars LazyFrame or parquet files staged a
batch of series at a time, and network="tirex2" fine-tuned on them shard by shard."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from tirex2_reference import config, reference_model, save_reference

from xlstm_ts import XLSTMForecaster
from xlstm_ts.data import lazy, prepare_series
from xlstm_ts.data.lazy import PanelWindows, is_lazy_source, stage_panel


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = config()
    return str(save_reference(reference_model(cfg), cfg, tmp_path_factory.mktemp("t2") / "ck"))


def _panel(n_series=30):
    rng = np.random.default_rng(0)
    frames = []
    for j in range(n_series):
        n = int(rng.integers(60, 140))
        t = np.arange(n)
        frames.append(pd.DataFrame({
            "unique_id": f"s{j:02d}", "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
            "y": 10 + j + np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n)}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    df = pl.from_pandas(_panel())
    out = tmp_path_factory.mktemp("panel")
    half = df["unique_id"].is_in([f"s{j:02d}" for j in range(15)])
    df.filter(half).write_parquet(out / "a.parquet")
    df.filter(~half).write_parquet(out / "b.parquet")
    return out


def test_staging_writes_every_series_in_batches(folder, tmp_path):
    assert is_lazy_source(folder) and is_lazy_source(folder / "a.parquet")
    assert is_lazy_source(pl.LazyFrame({"a": [1]})) and not is_lazy_source(_panel())
    staged = stage_panel(folder, tmp_path / "s", id_col="unique_id", time_col="ds",
                         target_col="y", keep=64, batch_series=7)
    whole = prepare_series(_panel())
    assert len(staged.shards) == 5  # 30 series in batches of 7
    np.testing.assert_array_equal(staged.lengths, whole.lengths)
    values = pl.concat([pl.read_parquet(tmp_path / "s" / s) for s in staged.shards])["values"]
    np.testing.assert_allclose(np.concatenate(values.to_list()), whole.target.numpy())
    assert staged.tail.lengths.tolist() == np.minimum(whole.lengths, 64).tolist()
    windows = PanelWindows(staged, lookback=32, horizon=12, val=12, windows=50, min_history=16)
    drawn = list(windows)
    assert len(drawn) == 50 and drawn[0]["history"].shape == (32,)
    assert all(w["history_mask"].sum() >= 16 and w["target_mask"].all() for w in drawn)
    with pytest.raises(ValueError, match="target_col='sales' is not a column"):
        stage_panel(folder, tmp_path / "t", id_col="unique_id", time_col="ds",
                    target_col="sales", keep=64)


def test_zero_shot_from_parquet_equals_the_in_memory_fit(folder, checkpoint):
    def model(**kw):
        return XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=12,
                               finetune=None, progress_bar=False, **kw)

    in_memory = model().fit(_panel()).predict()
    from_files = model().fit(folder).predict()
    assert isinstance(from_files, pl.DataFrame)  # parquet and lazy frames come back as polars
    pd.testing.assert_frame_equal(from_files.to_pandas(), in_memory)
    lazy_frame = model().fit(pl.scan_parquet(folder / "a.parquet")).predict()
    assert lazy_frame["unique_id"].n_unique() == 15


def test_fine_tuning_reads_the_staged_shards(folder, checkpoint, monkeypatch):
    monkeypatch.setattr(lazy, "BATCH_SERIES", 8)
    model = XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=12, max_epochs=2,
                            batches_per_epoch=3, batch_size=8, progress_bar=False,
                            random_state=0).fit(folder)
    assert model.epochs_trained_ == 2 and len(model.loss_history_["val_loss"]) == 2
    assert model.val_size_ == 12 and model.data_.lengths.max() == 64
    assert model.predict()["y_pred"].is_finite().all()


def test_lazy_sources_say_what_they_cannot_do(folder, checkpoint, tmp_path):
    with pytest.raises(ValueError, match="trains on the target alone"):
        XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=12,
                        future_covariates=("promo",)).fit(folder)
    gappy = _panel().drop(index=[5, 6])
    gappy.to_parquet(tmp_path / "gappy.parquet")
    with pytest.raises(ValueError, match="fill_missing"):
        XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=12,
                        finetune=None).fit(tmp_path / "gappy.parquet")
    with pytest.raises(ValueError, match="does not exist"):
        XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=12,
                        finetune=None).fit(tmp_path / "missing.parquet")
