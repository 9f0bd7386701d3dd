"""Window indexing properties (hypothesis), splits, padding and DataLoader use."""

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from xlstm_ts.data import WindowDataset, ett_regions, prepare_series, time_split_regions


def index_panel(lengths):
    """Target = global row index, so every window shows exactly which rows it read."""
    frames, start = [], 0
    for j, n in enumerate(lengths):
        frames.append(pd.DataFrame({"unique_id": f"s{j:03d}", "ds": np.arange(n),
                                    "y": np.arange(start, start + n, dtype=float)}))
        start += n
    return prepare_series(pd.concat(frames, ignore_index=True))


@settings(max_examples=60, deadline=None)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=6),
       lookback=st.integers(1, 12), horizon=st.integers(1, 6), stride=st.integers(1, 4))
def test_windows_lie_inside_their_series_without_leakage(lengths, lookback, horizon, stride):
    data = index_panel(lengths)
    ds = WindowDataset(data, lookback, horizon, stride=stride)
    expected = sum(max(0, (n - lookback - horizon) // stride + 1) for n in lengths)
    assert len(ds) == expected
    if not len(ds):
        return
    batch = ds[list(range(len(ds)))]
    offsets = torch.from_numpy(data.indptr[batch["series"].numpy()])
    first = offsets + batch["cutoff"]  # global row of the first horizon step
    rel = torch.arange(-lookback, horizon)
    rows = first[:, None] + rel
    assert torch.equal(batch["history"], rows[:, :lookback].float())
    assert torch.equal(batch["target"], rows[:, lookback:].float())
    ends = torch.from_numpy(data.indptr[batch["series"].numpy() + 1])
    assert bool((rows[:, 0] >= offsets).all()) and bool((rows[:, -1] < ends).all())
    assert bool(batch["history_mask"].all()) and bool(batch["target_mask"].all())


@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(10, 60), min_size=1, max_size=5),
       val=st.integers(0, 8), test=st.integers(0, 8), horizon=st.integers(1, 4))
def test_time_splits_keep_horizons_in_their_region(lengths, val, test, horizon):
    data = index_panel(lengths)
    regions = time_split_regions(data, val, test)
    for name, (lo, hi) in regions.items():
        ds = WindowDataset(data, 3, horizon, region=(lo, hi))
        if not len(ds):
            continue
        cut = ds.cutoffs
        assert (cut >= np.asarray(lo)[ds.series]).all()
        assert (cut + horizon <= np.asarray(hi)[ds.series]).all(), name
    # the regions tile each series: train ends where validation starts, validation where
    # test starts, test at the end; sizes are val and test wherever the series is long
    n = data.lengths
    (t_lo, t_hi), (v_lo, v_hi), (s_lo, s_hi) = (regions[k] for k in ("train", "val", "test"))
    assert (np.asarray(t_lo) == 0).all() and (np.asarray(s_hi) == n).all()
    assert (np.asarray(t_hi) == np.asarray(v_lo)).all()
    assert (np.asarray(v_hi) == np.asarray(s_lo)).all()
    long = n >= val + test
    assert (np.asarray(s_hi - s_lo)[long] == test).all()
    assert (np.asarray(v_hi - v_lo)[long] == val).all()


def test_ett_borders_give_the_standard_window_counts():
    data = index_panel([14400])
    L, H = 96, 24
    regions = ett_regions()
    counts = {k: len(WindowDataset(data, L, H, region=r)) for k, r in regions.items()}
    assert counts == {"train": 8640 - L - H + 1, "val": 11520 - 8640 - H + 1,
                      "test": 14400 - 11520 - H + 1}
    test = WindowDataset(data, L, H, region=regions["test"])
    assert test[0]["history"][0] == 11520 - L  # lookback of the first test window


def test_short_history_is_left_padded_and_masked():
    data = index_panel([5])
    ds = WindowDataset(data, 4, 1, min_history=2)
    first = ds[0]
    assert first["cutoff"] == 2
    assert first["history_mask"].tolist() == [False, False, True, True]
    assert first["history"].tolist() == [0, 0, 0, 1]


def test_missing_targets_are_masked_in_windows():
    df = pd.DataFrame({"ds": np.arange(6), "y": [0.0, 1, np.nan, 3, 4, 5]})
    data = prepare_series(df, target_missing="mask")
    batch = WindowDataset(data, 2, 2)[[0]]
    assert batch["history_mask"].tolist() == [[True, True]]
    assert batch["target_mask"].tolist() == [[False, True]]


def test_covariates_and_static_are_aligned():
    df = pd.DataFrame({"unique_id": "a", "ds": np.arange(8), "y": np.arange(8.0),
                       "known": np.arange(8.0) * 10, "seen": np.arange(8.0) * 100})
    static = pd.DataFrame({"unique_id": ["a"], "size": [7.0]})
    data = prepare_series(df, future_covariates=["known"], past_covariates=["seen"],
                          static_df=static)
    w = WindowDataset(data, 3, 2)[0]
    assert w["future"][:, 0].tolist() == [0, 10, 20, 30, 40]  # lookback + horizon
    assert w["past"][:, 0].tolist() == [0, 100, 200]  # lookback only
    assert w["static"].tolist() == [7.0]


def test_dataloader_with_sampler_draws_a_fixed_number_of_windows():
    data = index_panel([50, 30])
    ds = WindowDataset(data, 5, 3)
    loader = torch.utils.data.DataLoader(ds, batch_size=16, sampler=ds.sampler(40, seed=1),
                                         collate_fn=WindowDataset.collate)
    sizes = [batch["history"].shape for batch in loader]
    assert sizes == [(16, 5), (16, 5), (8, 5)]
    # the draw is a function of the seed (and epoch): same seed, same windows
    draw = list(ds.sampler(40, seed=1))
    assert draw == list(ds.sampler(40, seed=1))
    assert draw != list(ds.sampler(40, seed=2))
    assert all(0 <= j < len(ds) for j in draw)


@pytest.mark.parametrize("kwargs, match", [
    ({"lookback": 0, "horizon": 1}, "lookback"),
    ({"lookback": 3, "horizon": 1, "stride": 0}, "stride"),
    ({"lookback": 3, "horizon": 1, "min_history": 4}, "min_history"),
])
def test_bad_window_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WindowDataset(index_panel([10]), **kwargs)


def test_region_bounds_count_from_the_end_and_are_clipped():
    data = index_panel([20, 12])
    # horizons in [-8, -2) of each series: cutoffs 12..16 and 4..8 for H = 2, L = 3
    ds = WindowDataset(data, 3, 2, region=(-8, -2))
    assert ds.cutoffs.tolist() == [12, 13, 14, 15, 16, 4, 5, 6, 7, 8]
    assert ds.series.tolist() == [0] * 5 + [1] * 5
    # hi beyond a series' end is its end; per-series arrays are accepted
    ds = WindowDataset(data, 3, 2, region=(np.array([15, 5]), np.array([100, 9])), stride=2)
    assert ds.cutoffs.tolist() == [15, 17, 5, 7]
    assert len(WindowDataset(data, 3, 2, region=(5, 6))) == 0  # no room for a horizon


def test_indexing_forms_and_collate():
    ds = WindowDataset(index_panel([10]), 3, 2)
    one = ds[1]
    assert one["history"].tolist() == [1.0, 2.0, 3.0] and one["target"].tolist() == [4.0, 5.0]
    assert one["series"].item() == 0 and one["cutoff"].item() == 4
    for index in ([1, 2], (1, 2), np.array([1, 2]), torch.tensor([1, 2])):
        batch = ds[index]
        assert batch["history"][:, 0].tolist() == [1.0, 2.0]
    batch = ds[[0, 3]]
    assert WindowDataset.collate(batch) is batch
    assert len(list(ds.sampler(7))) == 7  # unseeded draws still count num_samples


def test_time_split_and_ett_region_arguments():
    data = index_panel([30])
    for bad in (-1, 2.0, True, "3"):
        with pytest.raises(ValueError, match="val_size must be a non-negative int"):
            time_split_regions(data, bad)
        with pytest.raises(ValueError, match="test_size must be a non-negative int"):
            time_split_regions(data, 2, bad)
    regions = time_split_regions(data, 5, 4)
    assert [tuple(np.asarray(r).tolist() for r in regions[k]) for k in ("train", "val", "test")] \
        == [([0], [21]), ([21], [26]), ([26], [30])]
    assert ett_regions(4) == {"train": (0, 34560), "val": (34560, 46080),
                              "test": (46080, 57600)}


def test_last_windows_pad_short_series_and_append_future_covariates():
    from xlstm_ts.data.windows import last_windows

    df = pd.DataFrame({"unique_id": ["a"] * 5 + ["b"] * 2, "ds": [0, 1, 2, 3, 4, 0, 1],
                       "y": [1.0, 2, 3, 4, 5, 10, 20], "known": np.arange(7.0)})
    data = prepare_series(df, future_covariates=["known"])
    ahead = torch.tensor([[[100.0], [101.0]], [[200.0], [201.0]]])  # (n=2, H=2, F=1)
    batch = last_windows(data, 3, ahead)
    assert batch["history"].tolist() == [[3.0, 4.0, 5.0], [0.0, 10.0, 20.0]]
    assert batch["history_mask"].tolist() == [[True] * 3, [False, True, True]]
    assert batch["future"][..., 0].tolist() == [[2.0, 3.0, 4.0, 100.0, 101.0],
                                                [0.0, 5.0, 6.0, 200.0, 201.0]]
    assert batch["series"].tolist() == [0, 1]


def test_padded_steps_carry_zero_covariates_and_short_series_have_no_training_part():
    df = pd.DataFrame({"unique_id": "a", "ds": np.arange(6), "y": np.arange(6.0) + 1,
                       "known": np.arange(6.0) + 1, "seen": np.arange(6.0) + 1})
    data = prepare_series(df, future_covariates=["known"], past_covariates=["seen"])
    first = WindowDataset(data, 4, 1, min_history=2)[0]  # two padded steps
    assert first["past"][:, 0].tolist() == [0.0, 0.0, 1.0, 2.0]
    assert first["future"][:, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 3.0]
    from xlstm_ts.data.windows import last_windows

    padded = last_windows(data, 8, torch.zeros(1, 1, 1))
    assert padded["past"][0, :, 0].tolist() == [0.0, 0.0, 1, 2, 3, 4, 5, 6]
    short = time_split_regions(index_panel([5, 30]), 4, 3)
    assert np.asarray(short["train"][1]).tolist() == [0, 23]  # the short one: nothing
    assert np.asarray(short["val"][0]).tolist() == [0, 23]
    assert np.asarray(short["test"][0]).tolist() == [2, 27]
    assert time_split_regions(index_panel([9]), 4)["test"][0].tolist() == [9]  # test_size 0


def test_sampler_draws_with_replacement():
    ds = WindowDataset(index_panel([8]), 3, 1)  # 5 windows
    draw = list(ds.sampler(50, seed=0))
    assert len(draw) == 50 and set(draw) <= set(range(5))
    # with replacement a window can come twice before all have come once (without
    # replacement every run of 5 draws would be a permutation)
    assert len(set(draw[:5])) < 5


def test_window_arguments_are_named_in_errors():
    data = index_panel([10])
    for name in ("lookback", "horizon", "stride"):
        kwargs = {"lookback": 3, "horizon": 2, "stride": 1, name: 0}
        with pytest.raises(ValueError, match=f"^{name} must be"):
            WindowDataset(data, **kwargs)


def test_region_ending_at_zero_holds_no_windows():
    data = index_panel([10])
    assert len(WindowDataset(data, 3, 2, region=(0, 0))) == 0
    assert len(WindowDataset(data, 3, 2, region=(0, -0))) == 0  # -0 is 0, not "from end"
    assert len(WindowDataset(data, 3, 2, region=(0, -2))) == len(
        WindowDataset(data, 3, 2, region=(0, 8)))


def test_one_row_panel_windows_and_last_window():
    from xlstm_ts.data.windows import last_windows

    data = index_panel([1])  # padding must not read a row the panel lacks
    batch = last_windows(data, 4, torch.zeros(1, 2, 0))
    assert batch["history"].tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert batch["history_mask"].tolist() == [[False, False, False, True]]


def test_last_windows_carry_static_features():
    from xlstm_ts.data.windows import last_windows

    df = pd.DataFrame({"unique_id": ["a"] * 3 + ["b"] * 3, "ds": [0, 1, 2] * 2,
                       "y": np.arange(6.0)})
    static = pd.DataFrame({"unique_id": ["a", "b"], "size": [7.0, 9.0]})
    data = prepare_series(df, static_df=static)
    batch = last_windows(data, 2, torch.zeros(2, 1, 0))
    assert batch["static"].tolist() == [[7.0], [9.0]]


def test_series_shorter_than_the_test_part_is_all_test():
    regions = time_split_regions(index_panel([2, 10]), val_size=2, test_size=3)
    assert [np.asarray(r).tolist() for r in regions["test"]] == [[0, 7], [2, 10]]
    assert [np.asarray(r).tolist() for r in regions["val"]] == [[0, 5], [0, 7]]
