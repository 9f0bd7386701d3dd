"""xlstm_ts/presets.py: the rules that fit the defaults to the data (lookback,
patching, validation size, members, epoch length), through `resolve` and the fit."""


import numpy as np
import pandas as pd
import pytest

from xlstm_ts import XLSTMForecaster
from xlstm_ts.data import Frequency
from xlstm_ts.models import Ensemble, NetworkConfig, build_network
from xlstm_ts.presets import FINE_PATCH, LONG_LOOKBACK, MANY_WINDOWS, cycle_length, resolve_window

FREQS = {"hourly": Frequency("fixed", 3_600_000_000), "15min": Frequency("fixed", 900_000_000),
         "daily": Frequency("fixed", 86_400_000_000),
         "business days": Frequency("business_days", 1),
         "weekly": Frequency("fixed", 7 * 86_400_000_000), "monthly": Frequency("months", 1),
         "quarterly": Frequency("months", 3), "yearly": Frequency("months", 12),
         "index": Frequency("index", 1)}


def test_cycle_lengths():
    assert [cycle_length(FREQS[k]) for k in FREQS] == [168, 672, 7, 5, 52, 12, 4, 1, 1]
    day = 86_400_000_000
    uncycled = [Frequency("business_days", 2), Frequency("fixed", 3 * day),
                Frequency("fixed", 3 * day // 2), Frequency("months", 2)]
    assert [cycle_length(f) for f in uncycled] == [1, 1, 1, 1]  # no known cycle: 1


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


@pytest.mark.parametrize("context, patch, horizon, expected", [
    (2048, 32, 12, 64),    # four horizons (48), in whole patches
    (2048, 32, 200, 512),  # at most a quarter of the context
    (64, 32, 1, 32),       # at least one patch, even past a quarter of the context
    (2048, 16, 10, 48),    # 40 steps rounded up to whole patches
])
def test_pretrained_lookback_follows_the_documented_rule(context, patch, horizon, expected):
    from xlstm_ts.presets import pretrained_lookback

    assert pretrained_lookback(context, patch, horizon) == expected


def test_validation_size_leaves_room_for_the_frequencys_lookback():
    """Hourly series of 300 steps at horizon 24: the hourly lookback (252) leaves 24
    steps of room, so validation gets 24, not a tenth (30), which the 96-step lookback
    of data without a known frequency leaves room for."""
    from xlstm_ts.presets import PANEL_SERIES, default_val_size

    hourly, lengths = FREQS["hourly"], np.full(3, 300)
    assert default_val_size(None, horizon=24, freq=hourly, lengths=lengths) == 24
    assert default_val_size(None, horizon=24, freq=None, lengths=lengths) == 30
    many = np.full(PANEL_SERIES, 2000)  # a panel of PANEL_SERIES series: one horizon
    assert default_val_size(96, horizon=24, freq=None, lengths=many) == 24
    assert default_val_size(96, horizon=24, freq=None, lengths=many[1:]) == 200
