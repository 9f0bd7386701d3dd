"""Streaming a TiRex-2 network (issue 45, part 5): a carried state advanced over new
steps forecasts as re-encoding the anchor plus those steps with the anchor's scaling,
and a fresh stream forecasts as the network does."""

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from tirex2_reference import config

from xlstm_ts import XLSTMForecaster
from xlstm_ts.models.tirex2 import (
    SeriesInput,
    TiRex2Config,
    TiRex2Network,
    forecast,
    save_checkpoint,
)
from xlstm_ts.models.tirex2.stream import TiRex2Stream

P, FUTURE = 8, 24


def _net(**options):
    torch.manual_seed(0)
    cfg = TiRex2Config.from_dict(config(D=32, P=P, context=64, future=FUTURE, **options))
    return TiRex2Network(cfg).eval()


def _series(n=150):
    g = torch.Generator().manual_seed(1)
    t = torch.arange(float(n))
    wave = 10 + 3 * torch.sin(t / 5) + 0.1 * torch.randn(n, generator=g)
    wave[20] = float("nan")
    trend = 0.5 * t + 0.1 * torch.randn(n, generator=g)  # forecast in differences
    return wave, trend, torch.randn(2, n, generator=g)


def _inputs(wave, trend, past, lo, hi, lo2, hi2):
    return [SeriesInput(wave[None, lo:hi]),
            SeriesInput(trend[None, lo2:hi2], past[:, lo2:hi2])]


def _max_gap(a, b):
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


@pytest.mark.parametrize("flip", [False, True])
def test_a_fresh_stream_forecasts_as_the_network(flip):
    net = _net(tta_sign_flip=flip)
    wave, trend, past = _series()
    series = _inputs(wave, trend, past, 0, 100, 0, 90)  # longer and shorter than context
    stream = TiRex2Stream.start(net, series)
    for horizon in (1, P, FUTURE):
        assert _max_gap(stream.forecast(net, horizon), forecast(net, series, horizon)) < 1e-4


@pytest.mark.parametrize("flip", [False, True])
def test_updates_equal_re_encoding_with_the_anchor_scaling(flip):
    net = _net(tta_sign_flip=flip)
    wave, trend, past = _series()
    stream = TiRex2Stream.start(net, _inputs(wave, trend, past, 0, 100, 0, 90))
    done = 0
    for n in (3, 5, 8, 1, 1):  # patch boundaries move: several phases, some read twice
        stream = stream.update(net, _inputs(wave, trend, past, 100 + done, 100 + done + n,
                                            90 + done, 90 + done + n))
        done += n
        again = replace(stream, phases={})._read(net)  # the whole history encoded anew
        for horizon in (5, FUTURE, 2 * FUTURE + 3):  # the last rolls out
            assert _max_gap(stream.forecast(net, horizon), again.forecast(net, horizon)) < 1e-4
    assert len(stream.phases) == 4  # lengths mod 8: 0 (anchor, then 16), 3, 1, 2
    restored = TiRex2Stream.from_state(stream.to_state())
    assert _max_gap(restored.forecast(net, 30), stream.forecast(net, 30)) == 0.0
    # the anchor's statistics are kept: a fresh forecast of the same history differs
    fresh = forecast(net, _inputs(wave, trend, past, 0, 100 + done, 0, 90 + done), FUTURE)
    assert _max_gap(stream.forecast(net, FUTURE), fresh) > 1e-3


def test_an_update_leaves_the_stream_it_came_from_and_checks_its_rows():
    net = _net()
    wave, trend, past = _series()
    stream = TiRex2Stream.start(net, _inputs(wave, trend, past, 0, 100, 0, 90))
    before = stream.forecast(net, 10)
    stream.update(net, _inputs(wave, trend, past, 100, 104, 90, 94))
    assert _max_gap(stream.forecast(net, 10), before) == 0.0
    with pytest.raises(ValueError, match="same number"):
        stream.update(net, _inputs(wave, trend, past, 100, 104, 90, 93))
    with pytest.raises(ValueError, match="each of the 2 streamed series"):
        stream.update(net, _inputs(wave, trend, past, 100, 104, 90, 94)[:1])
    with pytest.raises(ValueError, match="future-known covariates cannot be streamed"):
        TiRex2Stream.start(net, [SeriesInput(wave[None, :50], None, past[:, :60])])


def _panel(n=120, k=3):
    rng = np.random.default_rng(0)
    t = np.arange(n)
    return pd.concat([pd.DataFrame({
        "unique_id": f"s{j}", "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
        "y": 10 + j + np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n)})
        for j in range(k)], ignore_index=True)


def test_the_estimator_streams_saves_and_reanchors(tmp_path):
    folder = save_checkpoint(_net(), tmp_path / "ck")
    panel = _panel(140)
    steps = panel.groupby("unique_id").cumcount()
    model = XLSTMForecaster(network="tirex2", pretrained=str(folder), horizon=12,
                            progress_bar=False).fit(panel[steps < 100])
    anchored = model.predict()
    for lo, hi in ((100, 101), (101, 104), (104, 112)):
        model.update(panel[(steps >= lo) & (steps < hi)])
    assert model.data_.lengths.max() == 64  # the window keeps the context
    streamed = model.predict()
    assert streamed["ds"].iloc[0] == panel["ds"].iloc[111] + pd.Timedelta(hours=1)
    assert not np.allclose(streamed["y_pred"], anchored["y_pred"])
    # equal to re-encoding the anchor plus the new steps with the anchor's scaling
    stream = TiRex2Stream.from_state(model.stream_state_)
    again = replace(stream, phases={})._read(model.network_)
    median = torch.stack(again.forecast(model.network_, 12))[:, 0, 4].flatten()
    np.testing.assert_allclose(streamed["y_pred"], median.numpy(), rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    loaded = XLSTMForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(), streamed)
    # a re-run of the same rows is skipped; reset_state re-encodes the kept window
    loaded.update(panel[(steps >= 104) & (steps < 112)], skip_seen=True)
    pd.testing.assert_frame_equal(loaded.predict(), streamed)
    fresh = loaded.reset_state().predict()
    window = torch.stack([torch.tensor(g["y"].to_numpy()[48:112], dtype=torch.float32)
                          for _, g in panel[steps < 112].groupby("unique_id")])
    expected = forecast(loaded.network_, [SeriesInput(w[None]) for w in window], 12)
    np.testing.assert_allclose(fresh["y_pred"], torch.stack(expected)[:, 0, 4].flatten(),
                               rtol=1e-5, atol=1e-5)
    # unequal new steps: the rows join the window, the stream is dropped
    loaded.update(panel[(steps == 112) & (panel.unique_id != "s2")])
    assert not hasattr(loaded, "stream_state_")
