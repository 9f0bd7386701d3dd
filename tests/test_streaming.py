"""Streaming updates: carried recurrent state vs re-encoding, rolling windows, persistence."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster, datasets, streaming
from xlstm_ts.data import future_covariates, last_windows
from xlstm_ts.models.networks import NetworkConfig, build_network

LOOKBACK, HORIZON = 48, 12
TINY = {"lookback": LOOKBACK, "horizon": HORIZON, "d_model": 16, "num_heads": 2,
        "max_epochs": 2, "batches_per_epoch": 5, "batch_size": 16, "progress_bar": False,
        "random_state": 0, "calendar": ("hour",)}


@pytest.fixture(scope="module")
def panel():
    return datasets.synthetic(4, 300, seasonalities=(24,), noise=0.2, seed=3)


def _split(panel, n_train):
    head = panel.groupby("unique_id").head(n_train).reset_index(drop=True)
    rest = panel.groupby("unique_id").nth(slice(n_train, None)).reset_index(drop=True)
    return head, rest


def _steps(frame, a, b):
    """Rows a..b-1 (positions after the training part) of every series."""
    return frame.groupby("unique_id").nth(slice(a, b)).reset_index(drop=True)


@pytest.fixture(scope="module")
def stream_model(panel):
    train, _ = _split(panel, 240)
    return XLSTMForecaster(**TINY, network="xlstmtime", head="quantile").fit(train)


def test_network_advance_equals_encoding_the_whole_span():
    torch.manual_seed(0)
    config = NetworkConfig(lookback=32, horizon=5, network="xlstmtime", d_model=16, num_heads=2,
                           n_past=1, n_future=2, n_static=3, decomposition_kernel=5)
    net = build_network(config).eval()
    B, L, S = 3, 32, 40
    batch = {"history": torch.randn(B, S).cumsum(1), "history_mask": torch.rand(B, S) > 0.1,
             "past": torch.randn(B, S, 1), "future": torch.randn(B, S, 2),
             "static": torch.randn(B, 3)}

    def cut(a, b):
        return {k: v if k == "static" else v[:, a:b] for k, v in batch.items()}

    with torch.no_grad():
        whole = net.encode(batch, stats_steps=L)
        state = net.encode(cut(0, L))
        for a, b in [(L, L + 1), (L + 1, L + 6), (L + 6, S)]:  # 1, 5 and 2 new steps
            state = net.advance(state, cut(a, b))
    assert whole.keys() == state.keys()
    for key in whole:
        torch.testing.assert_close(state[key], whole[key], atol=1e-5, rtol=1e-5)


def test_network_forward_is_encode_then_head():
    torch.manual_seed(1)
    config = NetworkConfig(lookback=24, horizon=4, network="xlstmtime", d_model=16,
                           num_heads=2, n_future=1)
    net = build_network(config).eval()
    batch = {"history": torch.randn(2, 24), "history_mask": torch.ones(2, 24, dtype=torch.bool),
             "past": torch.zeros(2, 24, 0), "future": torch.randn(2, 28, 1),
             "static": torch.zeros(2, 0)}
    with torch.no_grad():
        params, _ = net(batch)
        # the recurrent path instead: run the first 16 steps with the statistics of all
        # 24 (as forward normalises), then advance over the last 8 one step at a time
        stats = net.revin.statistics(batch["history"].unsqueeze(-1), batch["history_mask"])

        def steps(lo, hi):
            return {"history": batch["history"][:, lo:hi],
                    "history_mask": batch["history_mask"][:, lo:hi],
                    "past": batch["past"][:, lo:hi], "future": batch["future"][:, lo:hi],
                    "static": batch["static"]}

        state = net._run(steps(0, 16), stats, tail=None, stack_state=None, window=None)
        for t in range(16, 24):
            state = net.advance(state, steps(t, t + 1))
        again, _ = net.head_from(state, batch["future"][:, 24:])
    torch.testing.assert_close(params, again, atol=1e-5, rtol=1e-5)


def test_update_matches_reencoding_from_the_anchor(stream_model, panel):
    train, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model)
    for a, b in [(0, 1), (1, 6), (6, 8)]:  # 1, 5 and 2 new steps per series
        model.update(_steps(rest, a, b))
    streamed = model.predict()

    # reference: encode the anchor window (the last LOOKBACK training steps) plus the 8
    # new steps in one pass, normalised with the anchor window's statistics
    span = model._prepare(pd.concat([train, _steps(rest, 0, 8)]))
    ahead = future_covariates(model.data_, span, None, HORIZON)
    window = last_windows(span, LOOKBACK + 8, ahead)
    net = model.network_
    with torch.no_grad():
        state = net.encode(window, stats_steps=LOOKBACK)
        params, stats = net.head_from(state, window["future"][:, LOOKBACK + 8:])
        point = net.denormalize(net.head.point(params), stats)
    np.testing.assert_allclose(streamed["y_pred"].to_numpy(), point.reshape(-1).numpy(),
                               rtol=1e-4, atol=1e-4)
    expected_start = _steps(rest, 7, 8).set_index("unique_id").ds + pd.Timedelta(hours=1)
    assert (streamed.groupby("unique_id").ds.min() == expected_start).all()


def test_reset_state_reanchors_on_the_sliding_window(stream_model, panel):
    train, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model).update(_steps(rest, 0, 24))
    history = pd.concat([train, _steps(rest, 0, 24)])
    window = model.predict(df=history)["y_pred"].to_numpy()
    streamed = model.predict()["y_pred"].to_numpy()
    drift = np.abs(streamed - window).max()
    assert 0 < drift < 0.5 * np.abs(window).mean()  # close, not equal: the anchor is older
    np.testing.assert_allclose(model.reset_state().predict()["y_pred"].to_numpy(), window,
                               rtol=1e-5, atol=1e-5)


def test_rollout_past_the_horizon_from_the_state(stream_model, panel):
    _, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model).update(_steps(rest, 0, 3))
    short, long = model.predict(), model.predict(horizon=2 * HORIZON)
    assert len(long) == 2 * len(short) and np.isfinite(long["y_pred"]).all()
    first = long.groupby("unique_id").head(HORIZON)["y_pred"].to_numpy()
    np.testing.assert_allclose(first, short["y_pred"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(model.predict()["y_pred"], short["y_pred"])  # state untouched


def test_update_validates_and_loses_nothing(stream_model, panel):
    _, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model).update(_steps(rest, 0, 2))
    before = model.predict()
    with pytest.raises(ValueError, match="do not continue where they ended"):
        model.update(_steps(rest, 3, 4))  # skips step 2
    with pytest.raises(ValueError, match="already absorbed"):
        model.update(_steps(rest, 1, 3))  # step 1 was absorbed
    unknown = _steps(rest, 2, 3).head(1).assign(unique_id="nope")
    with pytest.raises(ValueError, match="not seen in fit"):
        model.update(unknown)
    pd.testing.assert_frame_equal(model.predict(), before)
    model.update(_steps(rest, 0, 2), skip_seen=True)  # a re-run: nothing new
    pd.testing.assert_frame_equal(model.predict(), before)
    model.update(_steps(rest, 1, 3), skip_seen=True)  # one seen row and one new per series
    assert (model.data_.times[model.data_.indptr[1:] - 1]
            == _steps(rest, 2, 3).ds.to_numpy().astype("datetime64[us]")).all()


def test_update_some_series_only(stream_model, panel):
    _, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model)
    before = model.predict()
    one = _steps(rest, 0, 2).query("unique_id == 's1'")
    after = model.update(one).predict()
    changed = after.unique_id == "s1"
    assert not np.allclose(after[changed].y_pred, before[changed].y_pred)
    np.testing.assert_allclose(after[~changed].y_pred, before[~changed].y_pred, rtol=1e-5,
                               atol=1e-5)


def test_uneven_update_equals_the_same_steps_in_turn(stream_model, panel):
    """One update with 3 new steps for s0 and 1 for the others advances each series as
    updates of those steps in turn do (series grouped by their count of new steps)."""
    _, rest = _split(panel, 240)
    first = _steps(rest, 0, 1)
    uneven = pd.concat([_steps(rest, 0, 3).query("unique_id == 's0'"),
                        first.query("unique_id != 's0'")])
    at_once = copy.deepcopy(stream_model).update(uneven).predict()
    in_turn = (copy.deepcopy(stream_model).update(first)
               .update(_steps(rest, 1, 3).query("unique_id == 's0'")).predict())
    pd.testing.assert_frame_equal(at_once[["unique_id", "ds"]], in_turn[["unique_id", "ds"]])
    np.testing.assert_allclose(at_once.y_pred, in_turn.y_pred, rtol=1e-5, atol=1e-5)


def test_patch_network_rolls_its_window(panel):
    train, rest = _split(panel, 240)
    model = XLSTMForecaster(**TINY, patch_len=12, patch_stride=12).fit(train)
    model.update(_steps(rest, 0, 3)).update(_steps(rest, 3, 5), compile=True)  # no state:
    assert not hasattr(model, "stream_state_")  # compile has nothing to compile
    expected = model.predict(df=pd.concat([train, _steps(rest, 0, 5)]))
    pd.testing.assert_frame_equal(model.predict(), expected)


def test_state_is_saved_with_the_model(stream_model, panel, tmp_path):
    _, rest = _split(panel, 240)
    model = copy.deepcopy(stream_model).update(_steps(rest, 0, 4))
    model.save(tmp_path / "m")
    loaded = XLSTMForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(), model.predict())
    nxt = _steps(rest, 4, 6)
    pd.testing.assert_frame_equal(loaded.update(nxt).predict(), model.update(nxt).predict())
    loaded.reset_state().save(tmp_path / "m")
    assert not (tmp_path / "m" / "stream.pt").exists()


def _compiled_and_eager_agree(model, frames) -> bool:
    """Update a copy of ``model`` eagerly and one with ``compile=True`` over ``frames``
    in turn; their forecasts agree after each. Returns whether the compiled step ran."""
    eager, compiled = copy.deepcopy(model), copy.deepcopy(model)
    for frame in frames:
        expected = eager.update(frame).predict()["y_pred"].to_numpy()
        got = compiled.update(frame, compile=True).predict()["y_pred"].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    return streaming._COMPILED[type(model.network_)]._compiled is not None


def test_compiled_update_equals_the_eager_one(stream_model, panel):
    _, rest = _split(panel, 240)
    some = _steps(rest, 2, 5).query("unique_id in ['s0', 's2']")  # 3 steps of 2 series
    assert _compiled_and_eager_agree(stream_model,
                                     [_steps(rest, 0, 1), _steps(rest, 1, 2), some])


def test_compile_failure_warns_and_steps_eagerly(stream_model, panel, monkeypatch):
    from torch._inductor import config as inductor

    # a real compiler failure: no C++ compiler where inductor looks, no cached kernels
    # (inductor's own patch restores its config; monkeypatching it left later compiles
    # failing with "fx_graph_cache does not exist")
    monkeypatch.setattr(streaming, "_COMPILED", {})  # a fresh cache, dropped after the test
    torch._dynamo.reset()  # nothing compiled before is reused
    _, rest = _split(panel, 240)
    with inductor.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}), \
            pytest.warns(RuntimeWarning, match="torch.compile failed"):
        ran = _compiled_and_eager_agree(stream_model, [_steps(rest, 0, 1), _steps(rest, 1, 3)])
    torch._dynamo.reset()  # nothing compiled without a compiler is reused either
    assert not ran


def _no_rollout(*args, **kwargs):
    raise AssertionError("predict ran the head again instead of the step's forecast")


def test_compiled_step_forecasts_and_predict_reuses_it_only_while_current(stream_model, panel,
                                                                          monkeypatch):
    """update(compile=True) of every series makes the forecast in the compiled step;
    predict() returns it (the same numbers as the eager path, bands included) while
    that state is carried, and runs the head again for what it does not answer."""
    from xlstm_ts import inference

    _, rest = _split(panel, 240)
    eager, compiled = copy.deepcopy(stream_model), copy.deepcopy(stream_model)
    frame = _steps(rest, 0, 2)  # two new steps of every series
    expected = eager.update(frame).predict(level=(80,))
    compiled.update(frame, compile=True)
    with monkeypatch.context() as patched:
        patched.setattr(inference, "rollout", _no_rollout)
        got = compiled.predict(level=(80,))
    close = {"rtol": 1e-4, "atol": 1e-4}
    assert list(got.columns) == list(expected.columns) and "y_pred_lo80" in got
    pd.testing.assert_frame_equal(got, expected, **close)
    # other horizons run the head again (a shorter one pads the calendar covariates)
    for horizon in (HORIZON - 3, HORIZON + 5):
        pd.testing.assert_frame_equal(compiled.predict(horizon=horizon),
                                      eager.predict(horizon=horizon), **close)
    # an eager update or a reset makes the step's forecast stale: never returned again
    for model in (eager, compiled):
        model.update(_steps(rest, 2, 3))
    pd.testing.assert_frame_equal(compiled.predict(), eager.predict(), **close)
    compiled.update(_steps(rest, 3, 4), compile=True)
    eager.update(_steps(rest, 3, 4))
    for model in (eager, compiled):  # both re-encode their windows
        model.reset_state()
    pd.testing.assert_frame_equal(compiled.predict(), eager.predict(), **close)


def test_stream_state_has_one_layout_whatever_the_number_of_steps():
    """encode and advance over 1 or 5 steps return states of the same strides, so a
    compiled step meets the layout it was compiled for (dynamo guards on strides: a
    tail cut from a longer buffer made every fresh compiled stream compile twice)."""
    torch.manual_seed(0)
    config = NetworkConfig(lookback=32, horizon=5, network="xlstmtime", d_model=16,
                           num_heads=2, decomposition_kernel=5)
    net = build_network(config).eval()

    def batch(T):
        return {"history": torch.randn(3, T), "history_mask": torch.ones(3, T, dtype=torch.bool),
                "past": torch.zeros(3, T, 0), "future": torch.zeros(3, T, 0),
                "static": torch.zeros(3, 0)}

    with torch.no_grad():
        encoded = net.encode(batch(32))
        states = [encoded, net.advance(encoded, batch(1)), net.advance(encoded, batch(5))]
    for name, value in encoded.items():
        assert value.is_contiguous(), name
        assert {(s[name].shape, s[name].stride()) for s in states} == \
            {(value.shape, value.stride())}, name
