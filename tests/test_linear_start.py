"""xlstm_ts/training/linear_start.py: the ridge start's candidates, its choice on
validation, its refit with the validation windows, and the start kept to measure
the network against."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster, datasets
from xlstm_ts.data import Frequency
from xlstm_ts.models import NetworkConfig, build_network


def test_naive_maps_repeat_the_last_value_and_the_last_cycle():
    from xlstm_ts.training.linear_start import naive_maps

    maps = naive_maps(lookback=10, horizon=7, seasons=(4, 24))
    assert set(maps) == {"naive", "drift", "seasonal4"}  # a 24-step cycle does not fit
    window = torch.arange(10.0, dtype=torch.float64)[None]
    X = torch.cat([window, torch.ones(1, 1, dtype=torch.float64)], dim=1)
    assert (X @ maps["naive"]).tolist() == [[9.0] * 7]
    assert (X @ maps["seasonal4"]).tolist() == [[6.0, 7.0, 8.0, 9.0, 6.0, 7.0, 8.0]]
    line = 3.0 - 0.5 * window  # a straight line is continued exactly
    X = torch.cat([line, torch.ones(1, 1, dtype=torch.float64)], dim=1)
    torch.testing.assert_close(X @ maps["drift"], 3.0 - 0.5 * torch.arange(
        10.0, 17.0, dtype=torch.float64)[None])


def test_seasonal_periods_of_common_frequencies():
    from xlstm_ts.presets import seasonal_periods

    hour = 3_600_000_000
    assert seasonal_periods(Frequency("fixed", hour)) == (24, 168)
    assert seasonal_periods(Frequency("fixed", hour // 4)) == (96, 672)
    assert seasonal_periods(Frequency("fixed", 24 * hour)) == (7,)
    assert seasonal_periods(Frequency("business_days", 1)) == (5,)
    assert seasonal_periods(Frequency("months", 1)) == (12,)
    assert seasonal_periods(Frequency("months", 12)) == ()
    assert seasonal_periods(Frequency("index", 1)) == ()


def test_linear_start_falls_back_to_naive_on_random_walks(caplog):
    """On random walks the last value is the best forecast and a regression on few
    windows overfits: validation must pick the naive start, which the forecast then
    reproduces when training does not beat it."""
    rng = np.random.default_rng(0)
    n, length = 20, 60
    frames = [pd.DataFrame({"unique_id": f"s{k}", "ds": np.arange(length),
                            "y": 100 + np.cumsum(rng.normal(0, 1, length))})
              for k in range(n)]
    df = pd.concat(frames, ignore_index=True)
    model = XLSTMForecaster(horizon=6, lookback=24, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, progress_bar=False, random_state=0)
    with caplog.at_level("INFO", logger="xlstm_ts.training"):
        model.fit(df)
    starts = [r.getMessage() for r in caplog.records if "linear start" in r.getMessage()]
    assert starts and starts[0].startswith("linear start: naive"), starts


def _noisy_cycles(n_series: int, seed: int):
    """Training windows (horizons before step 100) and validation windows (100 to 120)
    of noisy 12-step cycles, lookback 24 and horizon 6; a small network for their
    RevIN units; and each series' training variance."""
    from xlstm_ts.data import WindowDataset, prepare_series
    from xlstm_ts.training import linear_start as ls

    rng = np.random.default_rng(seed)
    t = np.arange(120)
    df = pd.concat([pd.DataFrame({"unique_id": f"s{k}", "ds": t,
                                  "y": np.sin(2 * np.pi * t / 12 + k) + rng.normal(0, .3, 120)})
                    for k in range(n_series)], ignore_index=True)
    data = prepare_series(df)
    train = WindowDataset(data, 24, 6, region=(0, 100))
    val = WindowDataset(data, 24, 6, region=(100, 120))
    net = build_network(NetworkConfig(lookback=24, horizon=6, d_model=8, num_heads=2))
    return train, val, net, ls.series_variance(data, 100)


def test_linear_start_is_the_mean_of_the_best_candidates_on_validation(monkeypatch):
    """The start averages the TOP_K candidate maps with the lowest validation error
    that are within TIE of the best (named in the returned choice, best first);
    without validation windows it is the ridge shrunk towards zero, penalty 1e-3."""
    from xlstm_ts.training import linear_start as ls

    train, val, net, variance = _noisy_cycles(n_series=4, seed=3)

    gram, cross, weight_sum = ls._moments(net, train, np.arange(len(train)), variance)
    solutions = ls.candidates(gram, cross, weight_sum, ls.naive_maps(24, 6, (12,)))
    errors = ls.validation_errors(net, val, variance, solutions)
    ranked = sorted(errors, key=errors.get)
    near = [n for n in ranked[:3] if errors[n] <= (1 + ls.TIE) * errors[ranked[0]]]
    assert ls.TOP_K == 3
    assert ls.ridge_start(net, train, val, variance, seasons=(12,)).split(" + ") == near

    monkeypatch.setattr(ls, "TIE", 1.0)  # all three count as ties
    names = ls.ridge_start(net, train, val, variance, seasons=(12,)).split(" + ")
    assert names == ranked[:3]
    mean = torch.stack([solutions[n] for n in names]).mean(0)
    torch.testing.assert_close(net.linear.weight.double(), mean[:-1].T, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(net.linear.bias.double(), mean[-1], atol=1e-5, rtol=1e-4)
    # squared error is convex: the mean of the three is no worse than the third alone
    averaged = ls.validation_errors(net, val, variance, {"mean": mean})["mean"]
    assert averaged <= errors[names[-1]]

    monkeypatch.setattr(ls, "TIE", 0.0)  # a clear winner is taken alone
    assert ls.ridge_start(net, train, val, variance, seasons=(12,)) == ranked[0]
    assert ls.ridge_start(net, train, None, variance) == "zero, penalty 0.001"


def test_season_length_is_checked_and_offers_its_seasonal_start(caplog):
    with pytest.raises(ValueError, match="season_length"):
        XLSTMForecaster(horizon=6, season_length=0).fit(
            pd.DataFrame({"ds": np.arange(50), "y": np.arange(50.0)}))
    rng = np.random.default_rng(1)
    y = list(10 + 5 * rng.normal(size=12))
    for _ in range(108):  # a seasonal random walk: y_t = y_(t-12) + noise
        y.append(y[-12] + rng.normal(0, 0.3))
    df = pd.DataFrame({"ds": np.arange(len(y)), "y": y})
    model = XLSTMForecaster(horizon=12, lookback=36, season_length=12, d_model=8, num_heads=2,
                            max_epochs=1, batches_per_epoch=2, progress_bar=False,
                            random_state=0)
    with caplog.at_level("INFO", logger="xlstm_ts.training"):
        model.fit(df)
    starts = [r.getMessage() for r in caplog.records if "linear start" in r.getMessage()]
    assert starts and starts[0].startswith("linear start: seasonal12"), starts


def test_refit_map_is_the_chosen_ridge_on_training_and_validation_windows_together():
    """refit_map solves the chosen candidates again on both sets of windows: the same
    weighted ridge as one solve over the concatenated rows."""
    from xlstm_ts.training import linear_start as ls

    train, val, net, variance = _noisy_cycles(n_series=3, seed=5)
    choice = "zero, penalty 0.01 + seasonal12, penalty 0.1"

    rows = [(*ls._normalised(net, ds[np.arange(len(ds))]), ds[np.arange(len(ds))])
            for ds in (train, val)]
    X = torch.cat([torch.cat([w, torch.ones(len(w), 1)], 1) for w, *_ in rows]).double()
    Y = torch.cat([(y * m) for _, y, m, _, _ in rows]).double()
    w = torch.cat([ls.window_weights(v, b["series"], variance) for *_, v, b in rows])
    eye = torch.eye(25, dtype=torch.float64)
    eye[-1, -1] = 0
    seasonal = ls.naive_maps(24, 6, (12,))["seasonal12"]
    lhs = (X * w[:, None]).T @ X
    expected = (torch.linalg.solve(lhs + 0.01 * w.sum() * eye, (X * w[:, None]).T @ Y)
                + torch.linalg.solve(lhs + 0.1 * w.sum() * eye,
                                     (X * w[:, None]).T @ Y + 0.1 * w.sum() * eye @ seasonal)) / 2
    refit = ls.refit_map(net, ls.training_moments(net, train, variance), val, variance,
                         choice, seasons=(12,))
    torch.testing.assert_close(refit, expected, rtol=1e-6, atol=1e-8)
    ls.ridge_start(net, train, None, variance)  # train-only solution differs
    assert not torch.allclose(ls.linear_map(net), refit, atol=1e-3)


@pytest.mark.parametrize("lengths, refit", [((300, 300, 300), True), ((200, 60, 60), False)])
def test_the_kept_start_is_solved_again_with_validation_windows_unless_data_is_short(
        monkeypatch, lengths, refit):
    """Where the start is kept, the fitted linear map is the start solved again with
    the validation windows; on short data (most windows padded) it stays the training
    windows' solution."""
    from xlstm_ts.training import linear_start as ls
    from xlstm_ts.training import members

    maps = []

    def spy(net, *args, **kwargs):
        maps.append((ls.linear_map(net), ls.refit_map(net, *args, **kwargs)))
        return maps[-1][1]

    monkeypatch.setattr(members, "refit_map", spy)
    monkeypatch.setattr(members, "blend_weights", lambda net: (0.0,))  # keep the start
    rng = np.random.default_rng(0)
    df = pd.concat([pd.DataFrame({"unique_id": f"s{j}",
                                  "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                                  "y": rng.standard_normal(n)}) for j, n in enumerate(lengths)])
    model = XLSTMForecaster(horizon=8, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=1, learning_rate=1e-9, ema_decay=None,
                            n_models=1, val_size=16, progress_bar=False,
                            random_state=0).fit(df)
    assert model.correction_share_ == [0.0]
    final = ls.linear_map(model.network_)
    if refit:
        (start, solved), = maps
        torch.testing.assert_close(final, solved, rtol=1e-5, atol=1e-5)
        assert not torch.allclose(final, start, atol=1e-4)
    else:
        assert maps == []


def test_the_fit_keeps_its_linear_start_alone_to_measure_the_network_against():
    """Issue 47, item 3: beside each accuracy row the linear start alone: what the
    forecast would be with a network share of 0 (its correction output is zero), and
    where validation kept the start the network is that start."""
    from xlstm_ts import XLSTMForecaster, datasets

    df = datasets.synthetic(3, 24 * 30, seasonalities=(24,), noise=0.3, seed=4)
    model = XLSTMForecaster(lookback=96, horizon=24, d_model=16, num_heads=2, max_epochs=2,
                            batches_per_epoch=4, progress_bar=False, random_state=0).fit(df)
    start = model._start_network
    assert not start.head.proj.weight.any() and not start.head.proj.bias.any()
    alone = copy.copy(model)
    alone.network_ = start
    same = np.allclose(alone.predict()["y_pred"], model.predict()["y_pred"])
    assert same == (model.correction_share_ == [0.0])
    assert XLSTMForecaster(lookback=96, horizon=24, d_model=16, num_heads=2, max_epochs=1,
                           batches_per_epoch=2, val_size=0, progress_bar=False,
                           ).fit(df)._start_network is None  # nothing chose a share


def test_the_window_normalisation_reads_only_observed_steps():
    from xlstm_ts.training.linear_start import _normalised

    net = build_network(NetworkConfig(lookback=5, horizon=2, network="xlstmtime", d_model=8,
                                      num_heads=2, decomposition_kernel=3))
    batch = {"history": torch.tensor([[9.0, 9.0, 1.0, 2.0, 3.0]]),
             "history_mask": torch.tensor([[False, False, True, True, True]]),
             "target": torch.tensor([[4.0, 5.0]]), "target_mask": torch.ones(1, 2, dtype=bool)}
    window, target, _, variance = _normalised(net, batch)
    std = (2 / 3) ** 0.5  # of 1, 2, 3
    torch.testing.assert_close(window, torch.tensor([[0.0, 0.0, -1 / std, 0.0, 1 / std]]))
    torch.testing.assert_close(target, torch.tensor([[2 / std, 3 / std]], dtype=torch.float64))
    assert variance.item() == pytest.approx(2 / 3)


def test_the_moments_sum_over_batches(monkeypatch):
    from xlstm_ts.data import WindowDataset, prepare_series
    from xlstm_ts.training import linear_start as ls

    data = prepare_series(datasets.synthetic(n_series=2, length=60, seed=3))
    windows = WindowDataset(data, 12, 4)
    net = build_network(NetworkConfig(lookback=12, horizon=4, d_model=8, num_heads=2,
                                      patch_len=4, patch_stride=4))
    rows, per_series = np.arange(len(windows)), torch.tensor([1.0, 4.0])
    whole = ls._moments(net, windows, rows, per_series)
    monkeypatch.setattr(ls, "BATCH", 7)  # many batches, the last one short
    parts = ls._moments(net, windows, rows, per_series)
    for a, b in zip(whole[:2], parts[:2], strict=True):
        torch.testing.assert_close(a, b)
    assert parts[2] == pytest.approx(whole[2]) and whole[2] > 0


def test_naive_maps_by_window_length():
    from xlstm_ts.training.linear_start import _drift, naive_maps

    assert set(naive_maps(1, 3, seasons=(1, 2))) == {"naive"}  # no slope from one step
    assert set(naive_maps(8, 3, seasons=(1, 2, 8, 9))) == {"naive", "drift", "seasonal2",
                                                           "seasonal8"}
    line = torch.arange(20.0, dtype=torch.float64) * 0.1 + 3.0  # a straight line
    W = _drift(20, 5)
    assert W.dtype == torch.float64
    forecast = torch.cat([line, torch.ones(1, dtype=torch.float64)]) @ W
    torch.testing.assert_close(forecast, 3.0 + 0.1 * torch.arange(20.0, 25.0,
                                                                  dtype=torch.float64),
                               rtol=0, atol=1e-13)


def test_training_windows_beyond_the_limit_are_a_seeded_sample():
    from xlstm_ts.training.linear_start import _sample

    np.testing.assert_array_equal(_sample(6, 10, seed=0), np.arange(6))
    rows = _sample(1000, 50, seed=3)
    assert len(rows) == len(np.unique(rows)) == 50 and (np.diff(rows) > 0).all()
    np.testing.assert_array_equal(rows, _sample(1000, 50, seed=3))
    assert not np.array_equal(rows, _sample(1000, 50, seed=4))
