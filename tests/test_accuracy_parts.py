"""The parts issue 17 added for accuracy: the linear path, ensembles and the window
presets (numbers in benchmarks/results/accuracy-ett.md)."""

import copy

import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster
from xlstm_ts.data import Frequency
from xlstm_ts.models import Ensemble, NetworkConfig, build_network
from xlstm_ts.presets import FINE_PATCH, LONG_LOOKBACK, MANY_WINDOWS, cycle_length, resolve_window


def _batch(B=5, L=32, H=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    history = 10 + 3 * torch.randn(B, L, generator=g)
    return {"history": history, "history_mask": torch.ones(B, L, dtype=torch.bool),
            "past": torch.zeros(B, L, 0), "future": torch.zeros(B, L + H, 0),
            "static": torch.zeros(B, 0)}


@pytest.mark.parametrize("network", ["patch", "xlstmtime"])
@pytest.mark.parametrize("head", ["point", "quantile", "normal"])
def test_linear_path_starts_at_the_linear_forecast(network, head):
    config = NetworkConfig(lookback=32, horizon=8, network=network, d_model=8, num_heads=2,
                           patch_len=8, patch_stride=4, head=head)
    net = build_network(config)
    with torch.no_grad():  # a non-trivial linear map, so the check is not 0 == 0
        net.linear.weight.normal_()
        net.linear.bias.normal_()
    batch = _batch()
    params, (mean, std) = net(batch)
    window = (batch["history"].unsqueeze(-1) - mean) / std
    expected = net.linear(window[..., 0])
    point = net.head.point(params)
    if head == "quantile":  # quantiles start evenly spread around the linear forecast
        point = params[..., 0]
    torch.testing.assert_close(point, expected)
    forecast = net.denormalize(net.head.point(params), (mean, std))
    if head == "point":
        torch.testing.assert_close(forecast, expected * std[..., 0] + mean[..., 0])


def test_without_linear_path_there_is_none():
    net = build_network(NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2,
                                      patch_len=8, patch_stride=4, linear_path=False))
    assert net.linear is None


@pytest.mark.parametrize("head", ["point", "quantile"])
def test_ensemble_is_the_median_of_its_members(head):
    config = NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8,
                           patch_stride=4, head=head, n_models=3)
    torch.manual_seed(0)
    ensemble = build_network(config).eval()  # no dropout: the same members twice
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    for member in ensemble.members:  # leave the zero start, so members differ
        for p in member.parameters():
            p.data.normal_(0, 0.3)
    batch = _batch()
    params, _ = ensemble(batch)
    members = torch.stack([m(batch)[0] for m in ensemble.members])
    torch.testing.assert_close(params, members.median(dim=0).values)
    if head == "quantile":
        assert (params.diff(dim=-1) >= 0).all()  # medians of increasing levels increase


def test_forecaster_ensemble_point_is_the_median_of_member_forecasts(tmp_path):
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=200, freq="h")
    df = pd.concat([pd.DataFrame({"unique_id": f"s{j}", "ds": times,
                                  "y": np.sin(np.arange(200) * 2 * np.pi / 24) * (j + 1)
                                  + 0.1 * rng.standard_normal(200)}) for j in range(3)])
    params = {"lookback": 48, "horizon": 12, "d_model": 8, "num_heads": 2, "max_epochs": 2,
              "batches_per_epoch": 5, "progress_bar": False, "random_state": 3}
    model = XLSTMForecaster(**params, n_models=3).fit(df)
    assert len(model.member_loss_histories_) == 3
    assert len(model.correction_share_) == 3
    assert all(share in (0.0, 0.25, 0.5, 0.75, 1.0) for share in model.correction_share_)
    members = []
    for k, net in enumerate(model.network_.members):
        single = XLSTMForecaster(**{**params, "random_state": 3 + k}).fit(df)
        for a, b in zip(single.network_.state_dict().values(), net.state_dict().values(),
                        strict=True):
            torch.testing.assert_close(a, b)  # member k is the single model of seed 3 + k
        members.append(single.predict()["y_pred"].to_numpy())
    np.testing.assert_allclose(model.predict()["y_pred"], np.median(members, axis=0),
                               rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "m").predict(),
                                  model.predict())


FREQS = {"hourly": Frequency("fixed", 3_600_000_000), "15min": Frequency("fixed", 900_000_000),
         "daily": Frequency("fixed", 86_400_000_000),
         "business days": Frequency("business_days", 1),
         "weekly": Frequency("fixed", 7 * 86_400_000_000), "monthly": Frequency("months", 1),
         "quarterly": Frequency("months", 3), "yearly": Frequency("months", 12),
         "index": Frequency("index", 1)}


def test_cycle_lengths():
    assert [cycle_length(FREQS[k]) for k in FREQS] == [168, 672, 7, 5, 52, 12, 4, 1, 1]


@pytest.mark.parametrize("freq", list(FREQS))
@pytest.mark.parametrize("horizon", [1, 6, 24, 96, 720])
def test_presets_give_valid_networks_for_any_accepted_length(freq, horizon):
    val = horizon
    for shortest in sorted({horizon + val + 1, horizon + val + 5, 100, 1000, 5000}):
        if shortest < horizon + val + 1:
            continue
        lengths = np.array([shortest, shortest + 7, shortest * 2])
        shape = resolve_window(None, None, None, horizon=horizon, val_size=val,
                               freq=FREQS[freq], lengths=lengths)
        assert 1 <= shape.min_history <= shape.lookback <= LONG_LOOKBACK
        assert shape.lookback <= lengths.max() - horizon - val
        assert shape.min_history <= lengths.min() - horizon - val
        build_network(NetworkConfig(lookback=shape.lookback, horizon=horizon,
                                    patch_len=shape.patch_len, patch_stride=shape.patch_stride,
                                    d_model=8, num_heads=2))  # validates the shape


def test_presets_follow_the_documented_rule():
    long = np.array([20_000])
    hourly = resolve_window(None, None, None, horizon=96, val_size=96, freq=FREQS["hourly"],
                            lengths=long)
    assert (hourly.lookback, hourly.patch_len, hourly.patch_stride) == (384, 19, 9)
    assert resolve_window(None, None, None, horizon=24, val_size=24, freq=FREQS["hourly"],
                          lengths=long).lookback == 336
    # finer than hourly, from a quarter of a cycle (168 steps) on: two cycles (1344
    # steps, the cap), in about 40 patches; hourly data keeps 512 at long horizons
    quarter_hourly = [resolve_window(None, None, None, horizon=h, val_size=h,
                                     freq=FREQS["15min"], lengths=long)
                      for h in (96, 167, 168, 720)]
    assert [(s.lookback, s.patch_len, s.patch_stride) for s in quarter_hourly] == [
        (512, 24, 12), (512, 24, 12), (1344, 64, 32), (1344, 64, 32)]
    five_minutes = Frequency("fixed", 300_000_000)  # two weeks are 4032 steps: capped
    assert resolve_window(None, None, None, horizon=1008, val_size=1008, freq=five_minutes,
                          lengths=long).lookback == LONG_LOOKBACK == 1344
    assert resolve_window(None, None, None, horizon=720, val_size=720, freq=FREQS["hourly"],
                          lengths=long).lookback == 512
    assert resolve_window(None, None, None, horizon=720, val_size=720, freq=FREQS["15min"],
                          lengths=np.array([13_439])).lookback == 512  # under ten lookbacks
    given = resolve_window(100, 10, 5, horizon=24, val_size=24, freq=FREQS["hourly"],
                           lengths=long)
    assert (given.lookback, given.patch_len, given.patch_stride, given.min_history) == (
        100, 10, 5, 100)


def test_much_data_gets_finer_patches_up_to_lookback_512():
    """From MANY_WINDOWS training windows on, patches of at most FINE_PATCH steps (an
    ETTm1-sized panel); fewer windows, or the long lookback, keep the coarser rule."""
    def shape(horizon, freq, lengths):
        return resolve_window(None, None, None, horizon=horizon, val_size=horizon,
                              freq=FREQS[freq], lengths=np.array(lengths))

    ettm1, etth1 = [46_080] * 7, [11_520] * 7
    assert [(s.lookback, s.patch_len, s.patch_stride) for s in (
        shape(96, "15min", ettm1), shape(192, "15min", ettm1), shape(720, "15min", ettm1),
        shape(96, "hourly", etth1), shape(192, "hourly", etth1))] == [
        (512, FINE_PATCH, 8), (1344, 64, 32), (1344, 64, 32), (384, 19, 9),
        (512, 24, 12)]
    # the threshold counts training windows: horizon, validation and lookback left out
    edge = MANY_WINDOWS + 2 * 192 + 512 - 1
    assert shape(192, "hourly", [edge]).patch_len == FINE_PATCH
    assert shape(192, "hourly", [edge - 1]).patch_len == 24


def test_defaults_fit_short_yearly_series():
    """M3-Yearly-like panel (14 to 41 points, horizon 6): only horizon is given."""
    rng = np.random.default_rng(0)
    frames = []
    for j, n in enumerate(rng.integers(14, 42, size=12)):
        years = pd.date_range("1970-01-01", periods=n, freq="YS")
        frames.append(pd.DataFrame({"unique_id": f"Y{j}", "ds": years,
                                    "y": 1000 + 50 * np.arange(n) + 20 * rng.standard_normal(n)}))
    df = pd.concat(frames)
    model = XLSTMForecaster(horizon=6, max_epochs=2, progress_bar=False).fit(df)
    forecast = model.predict()
    assert len(forecast) == 12 * 6 and np.isfinite(forecast["y_pred"]).all()
    longest = int(df.groupby("unique_id").size().max())
    assert model.config_.lookback == min(24, longest - 12)  # the rule: max(4 * 6, 2, 16)
    assert model.n_models_ == model.config_.n_models == 5  # short data: an ensemble
    assert isinstance(model.network_, Ensemble)
    # the learning rate rule: 3e-3 without covariates, 1e-2 with any (here a calendar
    # feature); an explicit rate is used as given
    assert model.learning_rate is None and model.learning_rate_ == 3e-3
    with_calendar = XLSTMForecaster(horizon=6, max_epochs=1, calendar=("month",),
                                    n_models=1, progress_bar=False).fit(df)
    assert with_calendar.learning_rate_ == 1e-2
    explicit = XLSTMForecaster(horizon=6, max_epochs=1, learning_rate=0.05, n_models=1,
                               progress_bar=False).fit(df)
    assert explicit.learning_rate_ == 0.05
    assert model.batches_per_epoch is None and model.batches_per_epoch_ == 50  # few windows
    assert explicit.batches_per_epoch_ == 50


def test_epoch_length_follows_the_documented_rule(monkeypatch):
    """50 batches per epoch, 100 from MANY_WINDOWS training windows on; an explicit
    value is used as given; an epoch never exceeds one pass (but has MIN_BATCHES)."""
    from xlstm_ts import datasets, presets
    from xlstm_ts.data import prepare_series, time_split_regions
    from xlstm_ts.training import WindowDataModule

    assert [presets.default_batches_per_epoch(n) for n in (1, 99_999, 100_000, 10**7)] \
        == [50, 50, 100, 100]
    data = prepare_series(datasets.synthetic(n_series=4, length=3000, seasonalities=(24,)))
    regions = time_split_regions(data, val_size=24)

    def module(**kw):
        return WindowDataModule(data, 48, 24, train_region=regions["train"],
                                val_region=regions["val"], batch_size=8, **kw)

    n_windows = len(module().train)
    assert module().batches_per_epoch == 50 and module().steps_per_epoch == 50
    monkeypatch.setattr(presets, "MANY_WINDOWS", n_windows)
    assert module().batches_per_epoch == 100 and module().steps_per_epoch == 100
    assert module(batches_per_epoch=7).steps_per_epoch == 7
    assert module(batches_per_epoch=10**6).samples == n_windows  # one pass at most


def test_ensemble_size_follows_the_documented_rule():
    from xlstm_ts.presets import default_n_models

    def members(lengths, horizon, lookback):
        return default_n_models(lookback=lookback, horizon=horizon, val_size=horizon,
                                lengths=np.array(lengths))

    # yearly, horizon 6, lookback 24: short below a median of 24 + 6 + 6 steps
    assert members([14, 20, 35, 200], 6, 24) == 5
    assert members([36, 40, 200], 6, 24) == 1
    # a lookback the data allows in full (equal lengths, or a small given lookback)
    assert members([383] * 3, 24, 383 - 48) == 1
    assert members([200, 300, 400], 12, 48) == 1
    # panels of many long series get 3; fewer series (one system's channels) 1
    assert members([900] * 100, 48, 192) == 3
    assert members([900] * 99, 48, 192) == 1
    assert members([14] * 60 + [900] * 40, 6, 24) == 5  # short data first


def test_the_defaults_of_a_fit_resolve_in_one_call():
    """Issue 48, item 3: validation size, window, members, learning rate and seasons come
    from one call; what the caller set is kept."""
    from xlstm_ts.presets import resolve

    def defaults(lengths, **given):
        options = {"lookback": None, "patch_len": None, "patch_stride": None, "horizon": 48,
                   "val_size": None, "n_models": None, "learning_rate": None,
                   "season_length": None, "freq": FREQS["hourly"], "n_covariates": 0,
                   **given}
        return resolve(lengths=np.array(lengths), **options)

    panel = defaults([900] * 120)  # M4 Hourly-like: a horizon of validation, 3 members
    assert (panel.val_size, panel.short, panel.n_models) == (48, False, 3)
    assert (panel.learning_rate, panel.seasons) == (3e-3, (24, 168))
    assert panel.window.lookback == 336  # two weekly cycles
    system = defaults([14400] * 7, n_covariates=2)  # one system's channels, covariates
    assert (system.val_size, system.n_models, system.learning_rate) == (1440, 1, 1e-2)
    given = defaults([900] * 120, val_size=96, n_models=2, learning_rate=0.5,
                     season_length=12, lookback=96)
    assert (given.val_size, given.n_models, given.learning_rate, given.seasons) == (
        96, 2, 0.5, (12,))
    assert given.window.lookback == 96 and given.window.min_length == 96 + 48 + 96


def test_validation_size_follows_the_documented_rule():
    from xlstm_ts.presets import default_val_size

    def val(lengths, horizon, lookback=None, freq=FREQS["hourly"]):
        return default_val_size(lookback, horizon=horizon, freq=freq,
                                lengths=np.array(lengths))

    # a few long channels: a tenth of the median length (ETTh1's train rows: 864)
    assert val([8640] * 7, 96) == 864
    assert val([8640] * 7, 720, lookback=336) == 864
    # fewer than 100 series: the median decides; 100 or more (M4 Hourly's 414): a horizon
    assert val([652] * 40 + [912] * 59, 48) == 91
    assert val([652] * 169 + [912] * 245, 48) == 48
    # at least one horizon; at most what leaves the median series a full window
    assert val([1000] * 3, 250, lookback=100) == 250
    assert val([1000] * 3, 50, lookback=870) == 80
    # short data keeps one horizon (yearly, lookback 24: a median below 36 steps)
    assert val([14, 20, 35, 200], 6, freq=FREQS["yearly"]) == 6
    assert val([600] * 3, 96, lookback=512) == 96


def test_fit_resolves_the_validation_size():
    from xlstm_ts import XLSTMForecaster, datasets

    panel = datasets.synthetic(2, 400, seasonalities=(24,), noise=0.1, seed=1)
    model = XLSTMForecaster(horizon=12, lookback=48, d_model=8, num_heads=2, max_epochs=1,
                            batches_per_epoch=2, progress_bar=False).fit(panel)
    assert model.val_size_ == 40  # a tenth of 400 steps
    model.set_params(val_size=12).fit(panel)
    assert model.val_size_ == 12


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
    from xlstm_ts.models import NetworkConfig, build_network
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


def _channels(n_steps: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three hourly channels sharing their timestamps; c2 is c0 three steps later, so
    the other channels know c2's next values."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n_steps, freq="h")
    driver = np.cumsum(rng.normal(0, 1, n_steps + 3))
    values = {"c0": driver[3:], "c1": rng.normal(0, 1, n_steps), "c2": driver[:-3]}
    return pd.concat([pd.DataFrame({"unique_id": k, "ds": t, "y": v})
                      for k, v in values.items()], ignore_index=True)


def test_mixer_network_mixes_channels_and_keeps_its_series():
    from xlstm_ts.models import MixerXLSTM

    df = _channels()
    model = XLSTMForecaster(network="mixer", horizon=6, lookback=48, d_model=8, num_heads=2,
                            max_epochs=1, batches_per_epoch=2, progress_bar=False,
                            random_state=0).fit(df)
    assert isinstance(model.network_, MixerXLSTM) and model.config_.n_channels == 3
    forecast = model.predict()
    pd.testing.assert_frame_equal(forecast, model.predict(df=df))
    # the network: a window's forecast depends on the other channels at its times
    net = build_network(model.config_).eval()
    with torch.no_grad():
        net.head.proj.weight.normal_()
    batch = {**_batch(B=3, L=48, H=6), "past": torch.randn(3, 48, 3),
             "series": torch.tensor([0, 1, 2])}
    moved = {**batch, "past": batch["past"].clone()}
    moved["past"][0, :, 1] += torch.linspace(0, 5, 48)  # window 0's channel 1 only
    before, after = net(batch)[0], net(moved)[0]
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1:], after[1:])
    with pytest.raises(ValueError, match=r"lacks fitted series \['c1'\]"):
        model.predict(df=df[df.unique_id != "c1"])
    other = df.assign(unique_id=df.unique_id.str.replace("c2", "z"))
    with pytest.raises(ValueError, match=r"series it was not fitted on: \['z'\]"):
        model.predict(df=other)
    with pytest.raises(ValueError, match="same timestamps"):
        XLSTMForecaster(network="mixer", horizon=6, lookback=48).fit(df.iloc[5:])


@pytest.mark.parametrize("network", ["patch", "xlstmtime"])
@pytest.mark.parametrize("weight", [0.0, 0.25, 0.75, 1.0])
def test_folded_blend_forecasts_the_blend_of_trained_and_start(network, weight):
    from xlstm_ts.training.blend import fold_blend
    config = NetworkConfig(lookback=32, horizon=8, network=network, d_model=8, num_heads=2,
                           patch_len=8, patch_stride=4)
    torch.manual_seed(0)
    start = build_network(config).eval()
    with torch.no_grad():
        start.linear.weight.normal_(0, 0.1)
        trained = build_network(config).eval()
        trained.load_state_dict(start.state_dict())
        for p in trained.parameters():  # "training" moved every weight
            p.add_(torch.randn_like(p) * 0.1)
    batch = _batch()
    expected = weight * trained(batch)[0] + (1 - weight) * start(batch)[0]
    assert not torch.allclose(trained(batch)[0], start(batch)[0])
    fold_blend(trained, start, weight)
    torch.testing.assert_close(trained(batch)[0], expected)


def test_blend_validation_errors_are_those_of_the_blended_forecasts():
    from xlstm_ts.data import WindowDataset, prepare_series
    from xlstm_ts.training.blend import blend_val_mse
    config = NetworkConfig(lookback=16, horizon=4, d_model=8, num_heads=2, patch_len=8,
                           patch_stride=4)
    torch.manual_seed(1)
    start = build_network(config).eval()
    trained = build_network(config).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.normal_(0, 0.1)
    t = np.arange(60, dtype=float)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 60), "ds": np.tile(np.arange(60), 2),
                       "y": np.concatenate([np.sin(t / 3), 5 + 2 * np.cos(t / 5)])})
    data = prepare_series(df)
    val = WindowDataset(data, 16, 4)
    variance = torch.tensor([0.5, 2.0], dtype=torch.float64)
    errors = blend_val_mse(trained, start, val, variance, (0.0, 0.5, 1.0))
    batch = val[np.arange(len(val))]
    (p1, stats), (p0, _) = trained(batch), start(batch)
    target = trained.normalize_target(batch["target"], stats)
    scale = stats[1][:, 0, 0].double() ** 2 / variance[batch["series"]]
    for w, got in zip((0.0, 0.5, 1.0), errors, strict=True):
        err = ((w * p1 + (1 - w) * p0 - target).double() ** 2).sum(-1) * scale
        assert got == pytest.approx(float(err.sum()) / target.numel(), rel=1e-6)
    assert len(set(errors)) == 3


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


def test_a_step_with_non_finite_gradients_is_skipped_and_many_escalate():
    """Issue 48, item 6: the skipping of non-finite gradient steps and its escalation
    were untested."""
    from xlstm_ts.training.module import ForecastModule, OptimConfig

    module = ForecastModule(NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2,
                                          patch_len=8, patch_stride=8), OptimConfig())
    module.on_train_start()
    params = [p for p in module.parameters() if p.requires_grad]

    def gradients(bad: bool):
        for k, p in enumerate(params):
            p.grad = torch.full_like(p, float("nan") if bad and k == 0 else 0.5)

    gradients(bad=False)
    module.on_before_optimizer_step(None)  # finite: the step goes ahead untouched
    assert module.skipped_steps == 0 and all(p.grad is not None for p in params)
    gradients(bad=True)
    module.on_before_optimizer_step(None)  # one NaN anywhere: no parameter moves
    assert module.skipped_steps == 1 and all(p.grad is None for p in params)
    for _ in range(9):  # up to 10 skips (or 5% of the steps) are tolerated
        gradients(bad=True)
        module.on_before_optimizer_step(None)
    gradients(bad=True)
    with pytest.raises(FloatingPointError, match="11 of 1 training steps had non-finite"):
        module.on_before_optimizer_step(None)


def test_the_blend_choice_keeps_the_network_only_when_it_earns_it():
    """Issue 48, item 6: the keep/blend decision both ways, ties to the start."""
    from xlstm_ts.training.blend import BLEND_WEIGHTS, choose_blend

    assert choose_blend(BLEND_WEIGHTS, [1.0, 0.9, 0.8, 0.7, 0.6]) == 1.0  # the network kept
    assert choose_blend(BLEND_WEIGHTS, [0.6, 0.7, 0.8, 0.9, 1.0]) == 0.0  # the start kept
    assert choose_blend(BLEND_WEIGHTS, [1.0, 0.5, 0.7, 0.5, 0.9]) == 0.25  # ties: less network
    assert choose_blend(BLEND_WEIGHTS, [0.5] * 5) == 0.0
    assert choose_blend(BLEND_WEIGHTS, [float("nan"), 0.9, float("nan"), 0.8, 2.0]) == 0.75
    assert choose_blend(BLEND_WEIGHTS, [float("inf")] * 5) == 0.0  # no windows: the start


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
