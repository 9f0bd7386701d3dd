"""prepare_series: conversion, pandas/polars parity and every rejection with a clear message."""

import datetime as dt

import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from xlstm_ts import datasets
from xlstm_ts.data import (
    Frequency,
    append_observations,
    check_min_length,
    continue_series,
    future_covariates,
    long_to_wide,
    prepare_series,
    rows_to_long,
    wide_to_long,
)


def panel(n_series=3, length=6, freq="h"):
    rows = []
    for j in range(n_series):
        times = pd.date_range("2021-03-01", periods=length - j, freq=freq)
        rows.append(pd.DataFrame({"unique_id": f"s{j}", "ds": times,
                                  "y": np.arange(len(times)) + 10.0 * j,
                                  "promo": np.arange(len(times)) % 2}))
    return pd.concat(rows, ignore_index=True)


def test_unsorted_input_is_sorted_and_caller_frame_untouched():
    df = panel().sample(frac=1.0, random_state=0)
    before = df.copy()
    data = prepare_series(df, future_covariates=["promo"])
    pd.testing.assert_frame_equal(df, before)
    assert list(data.ids) == ["s0", "s1", "s2"]
    assert data.indptr.tolist() == [0, 6, 11, 15]
    assert data.target[:6].tolist() == [0, 1, 2, 3, 4, 5]
    assert str(data.freq) == "1h"
    assert data.target.dtype == torch.float32 and data.target.is_contiguous()


def test_pandas_polars_and_lazy_give_the_same_numbers():
    df = panel()
    kwargs = {"past_covariates": ["promo"], "calendar": ["hour", "dayofweek"]}
    a = prepare_series(df, **kwargs)
    b = prepare_series(pl.from_pandas(df), **kwargs)
    c = prepare_series(pl.from_pandas(df).lazy(), **kwargs)
    assert (a.kind, b.kind, c.kind) == ("pandas", "polars", "polars")
    for other in (b, c):
        assert np.array_equal(a.ids, other.ids) and np.array_equal(a.indptr, other.indptr)
        assert np.array_equal(a.times, other.times)
        for name in ("target", "observed", "past", "future"):
            assert torch.equal(getattr(a, name), getattr(other, name)), name


def test_single_series_may_omit_the_id_column():
    df = panel(1).drop(columns="unique_id")
    data = prepare_series(df)
    assert data.n_series == 1 and data.lengths.tolist() == [6]


def test_calendar_features_are_scaled_future_covariates():
    data = prepare_series(panel(1, 48), calendar=["hour", "month"])
    assert data.columns.future == ("cal_hour", "cal_month")
    hour = data.future[:, 0]
    assert hour.min() == -0.5 and hour.max() == 0.5
    assert torch.allclose(hour[:24], torch.arange(24) / 23 - 0.5)


def test_monthly_frequencies_are_calendar_months():
    data = prepare_series(pd.read_csv("datasets/airline.csv"), time_col="Date",
                          target_col="Passengers")
    assert data.freq == Frequency("months", 1)
    ends = pl.DataFrame({"ds": pl.date_range(dt.date(2020, 1, 1), dt.date(2020, 12, 1), "1mo",
                                             eager=True).dt.month_end(), "y": np.arange(12.0)})
    data = prepare_series(ends)
    future = data.freq.future(pl.Series(data.times[-1:]), 3)
    assert [d.date() for d in future.to_list()] == [dt.date(2021, 1, 31), dt.date(2021, 2, 28),
                                                    dt.date(2021, 3, 31)]


def test_static_covariates_one_hot_and_numeric():
    static = pd.DataFrame({"unique_id": ["s2", "s0", "s1"], "region": ["n", "s", "n"],
                           "size": [3.0, 1.0, 2.0]})
    data = prepare_series(panel(), static_df=static)
    assert data.columns.static == ("region=n", "region=s", "size")
    assert data.static.tolist() == [[0, 1, 1], [1, 0, 2], [1, 0, 3]]


@pytest.mark.parametrize("fill, expected, observed", [
    ("nan", [0, 1, 0, 3], [True, True, False, True]),
    ("ffill", [0, 1, 1, 3], [True, True, True, True]),
    ("zero", [0, 1, 0, 3], [True, True, True, True]),
])
def test_gaps_filled_on_request(fill, expected, observed):
    df = panel(1, 4).drop(index=[2])
    data = prepare_series(df, fill_missing=fill, future_covariates=["promo"])
    assert data.target.tolist() == expected
    assert data.observed.tolist() == observed
    assert data.future[:, 0].tolist() == [0, 1, 1, 1]  # covariates forward-filled


@pytest.mark.parametrize("policy, target, observed", [
    ("mask", [0, 1, 0, 3], [True, True, False, True]),
    ("ffill", [0, 1, 1, 3], [True, True, True, True]),
    ("zero", [0, 1, 0, 3], [True, True, True, True]),
])
def test_missing_targets_follow_the_policy(policy, target, observed):
    df = panel(1, 4)
    df.loc[2, "y"] = np.inf
    data = prepare_series(df, target_missing=policy)
    assert data.target.tolist() == target and data.observed.tolist() == observed


def test_wide_long_round_trip_keeps_library():
    wide = pl.DataFrame({"date": pl.datetime_range(dt.datetime(2020, 1, 1),
                                                   dt.datetime(2020, 1, 1, 4), "1h", eager=True),
                         "A": [1.0, 2, 3, 4, 5], "B": [5.0, 4, 3, 2, 1]})
    long = wide_to_long(wide, time_col="date")
    assert isinstance(long, pl.DataFrame) and long.columns == ["unique_id", "date", "y"]
    back = long_to_wide(long, time_col="date")
    assert back.equals(wide)
    long_pd = wide_to_long(wide.to_pandas(), time_col="date")
    assert isinstance(long_pd, pd.DataFrame) and len(long_pd) == 10


def test_rows_layout_drops_trailing_blanks_only():
    rows = pl.DataFrame({"V1": ["H1", "H2"], "V2": [1.0, 4.0], "V3": [2.0, None],
                         "V4": [3.0, 6.0], "V5": [None, None]})
    long = rows_to_long(rows, id_col="V1")
    assert long.columns == ["V1", "ds", "y"]
    assert long.filter(pl.col("V1") == "H1")["y"].to_list() == [1.0, 2.0, 3.0]
    assert long.filter(pl.col("V1") == "H2")["y"].to_list() == [4.0, None, 6.0]  # kept
    assert long["ds"].to_list() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="'id'"):
        rows_to_long(rows, id_col="id")
    with pytest.raises(TypeError, match="numeric"):
        rows_to_long(rows.with_columns(pl.col("V3").cast(pl.String)), id_col="V1")


def test_m4_loader_reads_the_rows_layout():
    train = datasets.load_m4_hourly("train", frame="polars")
    lengths = train.group_by("unique_id").len()["len"]
    assert train["unique_id"].n_unique() == 414 and lengths.min() == 700
    assert lengths.max() == 960 and train["y"].null_count() == 0


# --------------------------------------------------------------------------- rejections


def test_rejects_wrong_frame_type():
    with pytest.raises(TypeError, match="pandas DataFrame or a polars"):
        prepare_series({"y": [1.0]})


def test_rejects_empty_frame():
    with pytest.raises(ValueError, match="df is empty"):
        prepare_series(panel().iloc[:0])


def test_rejects_missing_columns_by_name():
    with pytest.raises(ValueError, match=r"missing from df: \['price'\]"):
        prepare_series(panel(), future_covariates=["price"])
    with pytest.raises(ValueError, match=r"\['target'\]"):
        prepare_series(panel(), target_col="target")


def test_rejects_non_numeric_target_and_covariates():
    df = panel()
    with pytest.raises(TypeError, match=r"Column 'y' \(target_col\) must be numeric"):
        prepare_series(df.assign(y=df.y.astype(str)))
    with pytest.raises(TypeError, match=r"Column 'promo' \(covariate\) must be numeric"):
        prepare_series(df.assign(promo="yes"), past_covariates=["promo"])


def test_rejects_duplicates_naming_the_series():
    df = panel()
    dup = pd.concat([df, df.iloc[[7]]])
    with pytest.raises(ValueError, match=r"1 duplicate \(unique_id, ds\) pairs, e.g. \('s1'"):
        prepare_series(dup)


def test_rejects_unparseable_and_mixed_times():
    df = panel(1, 3).assign(ds=["2020-01-01", "not a date", "2020-01-03"])
    with pytest.raises(ValueError, match=r"Column 'ds' \(time_col\).*'not a date'"):
        prepare_series(df)
    mixed = panel(1, 3).astype({"ds": object})
    mixed.loc[1, "ds"] = 5
    with pytest.raises(ValueError, match=r"Column 'ds' \(time_col\) mixes value types"):
        prepare_series(mixed)
    with pytest.raises(TypeError, match=r"Column 'ds' \(time_col\) must hold datetimes"):
        prepare_series(panel(1, 3).assign(ds=[0.5, 1.5, 2.5]))


def test_rejects_gaps_with_the_inferred_frequency():
    df = panel().drop(index=[8])
    with pytest.raises(ValueError, match=r"Series 's1' have gaps: 1 missing .* frequency 1h"):
        prepare_series(df)


def test_rejects_irregular_spacing():
    df = panel(1, 5)
    df.loc[2, "ds"] += pd.Timedelta(minutes=20)
    with pytest.raises(ValueError, match=r"Irregular spacing in series 's0'.*1h"):
        prepare_series(df)


def test_rejects_missing_targets_without_a_policy():
    df = panel()
    df.loc[7, "y"] = np.nan
    with pytest.raises(ValueError, match=r"Column 'y' \(target_col\) has 1 missing .* 's1'"):
        prepare_series(df)


def test_rejects_missing_covariates_by_column_and_series():
    df = panel().astype({"promo": float})
    df.loc[12, "promo"] = np.nan
    with pytest.raises(ValueError, match=r"Covariate column 'promo' .* 's2'"):
        prepare_series(df, future_covariates=["promo"])


def test_rejects_missing_static_rows():
    static = pd.DataFrame({"unique_id": ["s0", "s1"], "size": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"static_df has no row for series 's2'"):
        prepare_series(panel(), static_df=static)


def test_short_series_raise_or_drop_with_a_count():
    data = prepare_series(panel())  # lengths 6, 5, 4
    with pytest.raises(ValueError, match=r"2 series are shorter than 6 steps.*'s1', 's2'"):
        check_min_length(data, 6)
    with pytest.warns(UserWarning, match=r"Dropped 2 of 3 series .* \(9 rows\)"):
        kept = check_min_length(data, 6, "drop")
    assert list(kept.ids) == ["s0"] and kept.target.tolist() == [0, 1, 2, 3, 4, 5]


def test_rejects_bad_policies():
    with pytest.raises(ValueError, match="fill_missing"):
        prepare_series(panel(), fill_missing="linear")
    with pytest.raises(ValueError, match="target_missing"):
        prepare_series(panel(), target_missing="drop")


# --------------------------------------------------------------------------- predict time


def test_predict_time_rejects_unknown_ids_and_other_frequency():
    from xlstm_ts.data import check_compatible

    fitted = prepare_series(panel())
    check_compatible(fitted, prepare_series(panel(2)))
    with pytest.raises(ValueError, match=r"1 series ids were not seen in fit: 'zz'"):
        check_compatible(fitted, prepare_series(panel(1).assign(unique_id="zz")))
    with pytest.raises(ValueError, match=r"frequency 1d but the model was fitted on 1h"):
        check_compatible(fitted, prepare_series(panel(freq="D")))


def test_future_covariates_over_the_horizon():
    from xlstm_ts.data import future_covariates

    fitted = prepare_series(panel(2), future_covariates=["promo"], calendar=["hour"])
    last = {"s0": pd.Timestamp("2021-03-01 05:00"), "s1": pd.Timestamp("2021-03-01 04:00")}
    future = pd.DataFrame([{"unique_id": sid, "ds": t + pd.Timedelta(hours=h), "promo": 10.0 * h}
                           for sid, t in last.items() for h in (1, 2, 3)])
    values = future_covariates(fitted, fitted, future, horizon=2)
    assert values.shape == (2, 2, 2)
    assert values[:, :, 0].tolist() == [[10.0, 20.0], [10.0, 20.0]]
    assert values[0, :, 1].tolist() == pytest.approx([6 / 23 - 0.5, 7 / 23 - 0.5])
    with pytest.raises(ValueError, match=r"lacks covariate values for 1 horizon steps, e.g. "
                                         r"series 's1'"):
        future_covariates(fitted, fitted, future.drop(index=[4]), horizon=2)
    with pytest.raises(ValueError, match=r"pass future_df"):
        future_covariates(fitted, fitted, None, horizon=2)
    with pytest.raises(ValueError, match=r"missing from future_df: \['promo'\]"):
        future_covariates(fitted, fitted, future.drop(columns="promo"), horizon=2)


@settings(max_examples=25, deadline=None)
@given(lengths=st.lists(st.integers(1, 15), min_size=1, max_size=4),
       seed=st.integers(0, 10_000), shuffle=st.booleans())
def test_property_pandas_polars_parity(lengths, seed, shuffle):
    rng = np.random.default_rng(seed)
    rows = [pd.DataFrame({"unique_id": f"id{j}",
                          "ds": pd.date_range("2022-01-01", periods=n, freq="15min"),
                          "y": rng.standard_normal(n), "x": rng.standard_normal(n)})
            for j, n in enumerate(lengths)]
    df = pd.concat(rows, ignore_index=True)
    if shuffle:
        df = df.sample(frac=1.0, random_state=seed)
    a = prepare_series(df, past_covariates=["x"])
    b = prepare_series(pl.from_pandas(df), past_covariates=["x"])
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.indptr, b.indptr)
    assert torch.equal(a.target, b.target) and torch.equal(a.past, b.past)
    expected = np.concatenate([r["y"].to_numpy() for r in rows]).astype(np.float32)
    assert np.array_equal(a.target.numpy(), expected)


def test_contiguous_unordered_series_are_reordered_blockwise():
    df = pd.DataFrame({"unique_id": ["b"] * 3 + ["a"] * 2 + ["c"] * 2,
                       "ds": [0, 1, 2, 0, 1, 1, 0], "y": np.arange(7.0)})
    data = prepare_series(df)
    assert list(data.ids) == ["a", "b", "c"] and data.indptr.tolist() == [0, 2, 5, 7]
    assert data.target.tolist() == [3, 4, 0, 1, 2, 6, 5]


def test_shuffled_input_with_a_huge_time_range_sorts_by_two_keys():
    step = 2**61  # 2 series x a time span of 2**62 overflows one int64 sort key
    df = pd.DataFrame({"unique_id": [2, 1, 2, 1, 2, 1],
                       "ds": [step, 0, 0, 2 * step, 2 * step, step], "y": [5.0, 0, 4, 2, 6, 1]})
    data = prepare_series(df)
    assert data.ids.tolist() == [1, 2] and data.target.tolist() == [0, 1, 2, 4, 5, 6]
    assert str(data.freq) == f"{step}i"


@settings(max_examples=25, deadline=None)
@example(lengths=[4, 4], added=[2, 2, 0, 0, 0], keep=5)
@example(lengths=[3], added=[6, 0, 0, 0, 0], keep=4)  # more new rows than kept
@given(lengths=st.lists(st.integers(1, 12), min_size=1, max_size=5),
       added=st.lists(st.integers(0, 6), min_size=5, max_size=5), keep=st.integers(1, 15))
def test_appended_rows_are_each_series_last_keep_steps(lengths, added, keep):
    """append_observations keeps, per series, the last ``keep`` of its old rows followed
    by its new ones, whatever subset of series gets new rows and however many."""
    rows, new_rows = [], []
    for j, n in enumerate(lengths):
        rows += [{"unique_id": f"s{j}", "ds": t, "y": 100.0 * j + t} for t in range(n)]
        new_rows += [{"unique_id": f"s{j}", "ds": t, "y": 100.0 * j + t}
                     for t in range(n, n + added[j])]
    fitted = prepare_series(pd.DataFrame(rows))
    if not new_rows:
        return
    new = prepare_series(pd.DataFrame(new_rows))
    new, codes, _ = continue_series(fitted, new)
    out = append_observations(fitted, new, codes, keep=keep)
    for j, n in enumerate(lengths):
        total = n + added[j]
        expected = [100.0 * j + t for t in range(max(0, total - keep), total)]
        got = out.target[out.indptr[j]:out.indptr[j + 1]].tolist()
        assert got == expected, (j, got, expected)
        assert list(out.times[out.indptr[j]:out.indptr[j + 1]]) == \
            list(range(max(0, total - keep), total))


def test_business_day_data_has_no_weekend_gaps_and_fills_only_weekdays():
    ds = pd.bdate_range("2024-01-01", periods=30)
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": np.arange(30.0)})
    data = prepare_series(df)
    assert str(data.freq) == "1bd" and data.n_series == 1 and int(data.lengths[0]) == 30
    future = pd.to_datetime(data.future_times(3))
    assert list(future) == list(pd.bdate_range(ds[-1], periods=4)[1:])
    gappy = df.drop(index=[10, 11])  # two weekdays missing: a gap of two business days
    with pytest.raises(ValueError, match="2 missing time steps at the inferred frequency 1bd"):
        prepare_series(gappy)
    filled = prepare_series(gappy, fill_missing="ffill")
    assert int(filled.lengths[0]) == 30  # the two weekdays back, no weekend rows added
    assert filled.target[10].item() == filled.target[11].item() == 9.0
    saturday = pd.DataFrame({"unique_id": ["s"], "ds": [pd.Timestamp("2024-02-10")], "y": [0.0]})
    with pytest.raises(ValueError, match=r"Saturday or Sunday.*'ds'"):
        prepare_series(pd.concat([df, saturday]), freq=data.freq)


def test_daily_times_in_a_daylight_saving_zone_name_the_zone_and_the_fix():
    ds = pd.date_range("2024-03-01", periods=60, freq="D", tz="Europe/Berlin")  # DST on 31 Mar
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": np.arange(60.0)})
    with pytest.raises(ValueError, match=r"time zone 'Europe/Berlin'.*tz_localize\(None\)"):
        prepare_series(df)
    assert str(prepare_series(df.assign(ds=ds.tz_localize(None))).freq) == "1d"
    hourly = df.assign(ds=pd.date_range("2024-03-30", periods=60, freq="h", tz="Europe/Berlin"))
    assert str(prepare_series(hourly).freq) == "1h"  # hours are regular in UTC


def test_calendar_features_follow_the_callers_wall_clock_across_daylight_saving():
    """Times are held in UTC; the hour of day a model sees is the caller's (in Berlin
    08:00 is 07:00 UTC in winter and 06:00 UTC in summer)."""
    ds = pd.date_range("2024-03-30", periods=72, freq="h", tz="Europe/Berlin")  # DST 31 Mar
    df = pd.DataFrame({"unique_id": "s", "ds": ds, "y": np.arange(72.0)})
    data = prepare_series(df, calendar=("hour",))
    hours = (data.future[:, 0].numpy() + 0.5) * 23
    np.testing.assert_allclose(hours, ds.hour.to_numpy(), atol=1e-4)
    ahead = future_covariates(data, data, None, 30)[0, :, 0].numpy()
    expected = pd.date_range(ds[-1], periods=31, freq="h")[1:].hour.to_numpy()
    np.testing.assert_allclose((ahead + 0.5) * 23, expected, atol=1e-4)


@pytest.mark.parametrize("added, keep", [(1, 6), (2, 4), (9, 5), (3, 20)])
def test_a_streamed_step_appends_as_the_general_row_plan_does(added, keep):
    """Every series getting the same number of new rows takes the grid path of
    append_observations; it must equal the general row plan in every field."""
    from xlstm_ts.data.append import _append_rows, _uniform_step

    def frame(start, stop):
        return pd.DataFrame([{"unique_id": f"s{j}", "ds": t, "y": 10.0 * j + t,
                              "p": -t - j, "f": 0.5 * t} for j in range(3)
                             for t in range(start, stop)])

    fitted = prepare_series(frame(0, 6), past_covariates=["p"], future_covariates=["f"])
    new = prepare_series(frame(6, 6 + added), past_covariates=["p"], future_covariates=["f"])
    new, codes, _ = continue_series(fitted, new)
    assert _uniform_step(fitted, new, codes)
    fast = append_observations(fitted, new, codes, keep=keep)
    general = _append_rows(fitted, new, codes, keep=keep)
    np.testing.assert_array_equal(fast.indptr, general.indptr)
    np.testing.assert_array_equal(fast.times, general.times)
    for name in ("target", "observed", "past", "future"):
        assert torch.equal(getattr(fast, name), getattr(general, name)), name
    kept = min(6 + added, keep)
    assert fast.target[:kept].tolist() == [float(t) for t in range(6 + added - kept, 6 + added)]
    assert not _uniform_step(fitted, new.subset(np.array([True, False, True])),
                             codes[[0, 2]])  # a subset of the series: the row plan
