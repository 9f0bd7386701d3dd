"""Frequencies (inference, names, stepping) and per-series scaler statistics on cases
where an off-by-one, a wrong unit or a dropped filter changes the answer (issue 20)."""

from datetime import datetime

import numpy as np
import polars as pl
import pytest
import torch

from xlstm_ts.data import SeriesScaler
from xlstm_ts.data.freq import Frequency, infer_frequency

HOUR = 3_600_000_000
DAY = 24 * HOUR


def _times(*stamps: str) -> np.ndarray:
    return np.array(stamps, dtype="datetime64[us]")


def _starts(*lengths: int) -> np.ndarray:
    starts = np.zeros(sum(lengths), dtype=bool)
    starts[np.concatenate([[0], np.cumsum(lengths)[:-1]])] = True
    return starts


@pytest.mark.parametrize("freq, name", [
    (Frequency("index", 3), "3i"), (Frequency("months", 1), "1mo"),
    (Frequency("months", 3), "3mo"), (Frequency("months", 12), "1y"),
    (Frequency("months", 24), "2y"), (Frequency("fixed", DAY), "1d"),
    (Frequency("fixed", 7 * DAY), "7d"), (Frequency("fixed", HOUR), "1h"),
    (Frequency("fixed", 15 * 60_000_000), "15m"), (Frequency("fixed", 90 * 60_000_000), "90m"),
    (Frequency("fixed", 5_000_000), "5s"), (Frequency("fixed", 1_500), "1500us"),
])
def test_frequency_names(freq, name):
    assert str(freq) == name


def test_future_and_shift_step_each_kind():
    hourly = Frequency("fixed", HOUR)
    last = pl.Series([datetime(2024, 1, 1, 22), datetime(2024, 3, 1)])
    got = hourly.future(last, 3).to_list()
    assert got == [datetime(2024, 1, 1, 23), datetime(2024, 1, 2, 0), datetime(2024, 1, 2, 1),
                   datetime(2024, 3, 1, 1), datetime(2024, 3, 1, 2), datetime(2024, 3, 1, 3)]
    assert hourly.shift(last, -2).to_list() == [datetime(2024, 1, 1, 20),
                                                datetime(2024, 2, 29, 22)]
    index = Frequency("index", 5)
    assert index.future(pl.Series([10, 100]), 2).to_list() == [15, 20, 105, 110]
    assert index.shift(pl.Series([10]), -3).to_list() == [-5]
    quarterly = Frequency("months", 3)
    starts = pl.Series([datetime(2023, 11, 1)])
    assert quarterly.future(starts, 2).to_list() == [datetime(2024, 2, 1), datetime(2024, 5, 1)]
    # month ends stay month ends (Feb 29 -> May 31, not May 29)
    ends = pl.Series([datetime(2024, 2, 29), datetime(2023, 11, 30)])
    assert quarterly.future(ends, 1).to_list() == [datetime(2024, 5, 31), datetime(2024, 2, 29)]
    assert quarterly.shift(ends, -1).to_list() == [datetime(2023, 11, 30),
                                                   datetime(2023, 8, 31)]
    # one mid-month time among month ends: no month-end snapping
    mixed = pl.Series([datetime(2024, 2, 29), datetime(2024, 2, 15)])
    assert Frequency("months", 1).future(mixed, 1).to_list() == [datetime(2024, 3, 29),
                                                                 datetime(2024, 3, 15)]


@pytest.mark.parametrize("freq, last", [
    (Frequency("fixed", HOUR), ["2024-01-01T22", "2024-02-29T23"]),
    (Frequency("fixed", DAY), ["2024-02-28", "2023-12-31"]),
    (Frequency("months", 1), ["2024-01-31", "2024-02-29"]),  # month ends stay month ends
    (Frequency("months", 12), ["2020-02-29", "2021-06-01"]),
    (Frequency("index", 5), [10, 100]),
])
def test_after_is_future_on_a_panels_own_arrays(freq, last):
    """The numpy path of streamed updates steps time exactly as the polars one."""
    last = np.array(last, dtype=np.int64 if freq.kind == "index" else "datetime64[us]")
    got = freq.after(last, 3)
    assert got.dtype == last.dtype
    np.testing.assert_array_equal(got, freq.future(pl.Series(last), 3).to_numpy())
    assert freq.after(last[:0], 3).shape == (0,)


def test_infer_frequency_kinds_and_the_most_common_step():
    hourly = _times("2024-01-01T00", "2024-01-01T01", "2024-01-01T03", "2024-01-01T04",
                    "2024-01-01T05")
    assert infer_frequency(hourly, _starts(5)) == Frequency("fixed", HOUR)  # one gap of 2 h
    # the step between two series is not a step
    two = _times("2024-01-01", "2024-01-02", "2030-01-01", "2030-01-02")
    assert infer_frequency(two, _starts(2, 2)) == Frequency("fixed", DAY)
    monthly = _times("2024-01-01", "2024-02-01", "2024-03-01", "2024-04-01")
    assert infer_frequency(monthly, _starts(4)) == Frequency("months", 1)
    quarterly = _times("2023-01-01", "2023-04-01", "2023-07-01", "2023-10-01")
    assert infer_frequency(quarterly, _starts(4)) == Frequency("months", 3)
    half = _times("2022-01-01", "2022-07-01", "2023-01-01", "2023-07-01")
    assert infer_frequency(half, _starts(4)) == Frequency("months", 6)
    yearly = _times("2020-01-01", "2021-01-01", "2022-01-01")
    assert infer_frequency(yearly, _starts(3)) == Frequency("months", 12)
    # 27 and 32 days are fixed steps, not months
    assert infer_frequency(_times("2024-01-01", "2024-01-28"), _starts(2)) == Frequency(
        "fixed", 27 * DAY)
    assert infer_frequency(_times("2024-01-01", "2024-02-02"), _starts(2)) == Frequency(
        "fixed", 32 * DAY)
    weekly = _times("2024-01-01", "2024-01-08", "2024-01-15")
    assert infer_frequency(weekly, _starts(3)) == Frequency("fixed", 7 * DAY)
    ints = np.array([0, 2, 4, 8, 10, 1, 3], dtype=np.int32)
    assert infer_frequency(ints, _starts(5, 2)) == Frequency("index", 2)
    assert infer_frequency(np.array([7, 9]), _starts(1, 1)) is None
    assert infer_frequency(_times("2024-01-01", "2025-01-01"), _starts(1, 1)) is None


def _panel(*series):
    values = torch.tensor(np.concatenate(series), dtype=torch.float64)
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in series])]).astype(np.int64)
    return values, indptr


def test_scaler_statistics_with_negative_end_mask_and_empty_series():
    a = np.array([1.0, 3.0, 5.0, 7.0, 1000.0])
    b = np.array([2.0, 4.0, 600.0])
    values, indptr = _panel(a, b)
    # end=-1: the last row of each series is held out
    std = SeriesScaler("standard").fit(values, indptr, end=-1)
    assert std.loc_.tolist() == [4.0, 3.0]
    assert std.scale_.tolist() == pytest.approx([np.sqrt(5.0), 1.0])
    robust = SeriesScaler("robust").fit(values, indptr, end=np.array([4, 2]))
    assert robust.loc_.tolist() == [4.0, 3.0]  # medians of even counts interpolate
    assert robust.scale_.tolist() == pytest.approx([5.5 - 2.5, 3.5 - 2.5])
    minmax = SeriesScaler("minmax").fit(values, indptr, end=np.array([4, 2]))
    assert minmax.loc_.tolist() == [1.0, 2.0] and minmax.scale_.tolist() == [6.0, 2.0]
    none = SeriesScaler("none").fit(values, indptr)
    assert none.loc_.tolist() == [0.0, 0.0] and none.scale_.tolist() == [1.0, 1.0]
    # a series without training rows gets loc 0, scale 1 (nothing becomes NaN or inf)
    observed = torch.tensor([True] * 5 + [False] * 3)
    for method in ("standard", "robust", "minmax"):
        scaler = SeriesScaler(method).fit(values, indptr, observed=observed)
        assert scaler.loc_[1].item() == 0.0 and scaler.scale_[1].item() == 1.0, method
    ends = SeriesScaler("minmax").fit(values, indptr, end=np.array([5, 0]))
    assert ends.loc_.tolist() == [1.0, 0.0] and ends.scale_.tolist() == [999.0, 1.0]


def test_scaler_transform_broadcasts_per_row_and_keeps_dtype():
    values, indptr = _panel(np.array([0.0, 2.0]), np.array([10.0, 30.0]))
    scaler = SeriesScaler("standard").fit(values, indptr)
    x = torch.tensor([[1.0, 3.0], [20.0, 40.0], [2.0, 0.0]])  # rows of series 0, 1, 0
    series = torch.tensor([0, 1, 0])
    scaled = scaler.transform(x, series)
    assert scaled.dtype == torch.float32
    torch.testing.assert_close(scaled, torch.tensor([[0.0, 2.0], [0.0, 2.0], [1.0, -1.0]]))
    back = scaler.inverse_transform(scaled, series)
    assert back.dtype == torch.float32
    torch.testing.assert_close(back, x)


def test_month_like_steps_at_the_edges_of_their_day_ranges():
    def inferred(*stamps):
        return infer_frequency(_times(*stamps), _starts(len(stamps)))

    assert inferred("2023-02-01", "2023-03-01") == Frequency("months", 1)  # 28 days
    assert inferred("2023-02-01", "2023-05-01") == Frequency("months", 3)  # 89 days
    assert inferred("2023-11-01", "2024-02-01") == Frequency("months", 3)  # 92 days
    assert inferred("2023-01-01", "2023-04-04") == Frequency("fixed", 93 * DAY)
    assert inferred("2023-07-01", "2024-01-01") == Frequency("months", 6)  # 184 days
    assert inferred("2023-07-01", "2024-01-02") == Frequency("fixed", 185 * DAY)
    assert inferred("2023-01-01", "2024-01-01") == Frequency("months", 12)  # 365 days
    assert inferred("2024-01-01", "2025-01-01") == Frequency("months", 12)  # 366 days
    assert inferred("2024-01-01", "2025-01-02") == Frequency("fixed", 367 * DAY)


def test_scaler_end_and_observed_together_single_rows_and_small_scales():
    a = np.array([1.0, 2.0, 3.0, 100.0])
    b = np.array([0.2, 0.4, 50.0])
    c = np.array([7.0])
    values, indptr = _panel(a, b, c)
    observed = torch.tensor([True, False, True, True, True, True, True, True])
    std = SeriesScaler("standard").fit(values, indptr, end=np.array([3, 2, 1]),
                                       observed=observed)
    assert std.loc_.tolist() == pytest.approx([2.0, 0.3, 7.0])  # a: rows 0 and 2 only
    assert std.scale_.tolist() == pytest.approx([1.0, 0.1, 1.0])  # 0.1 is kept, not 1
    minmax = SeriesScaler("minmax").fit(values, indptr, end=np.array([3, 2, 1]))
    assert minmax.loc_.tolist() == [1.0, 0.2, 7.0]  # one row: loc is that row, scale 1
    assert minmax.scale_.tolist() == pytest.approx([2.0, 0.2, 1.0])
    robust = SeriesScaler("robust").fit(values, indptr, end=np.array([3, 2, 1]))
    assert robust.loc_.tolist() == pytest.approx([2.0, 0.3, 7.0])
    assert robust.scale_.tolist() == pytest.approx([1.0, 0.1, 1.0])
    # the last series without training rows: statistics still cover every series
    empty_last = SeriesScaler("standard").fit(values, indptr, end=np.array([4, 3, 0]))
    assert empty_last.loc_.shape == (3,) and empty_last.loc_[2].item() == 0.0


def test_business_days_are_inferred_and_stepped_over_weekends():
    # Thursday .. Tuesday without the weekend: daily steps and one Friday -> Monday
    bdays = _times("2024-01-04T16", "2024-01-05T16", "2024-01-08T16", "2024-01-09T16")
    business = Frequency("business_days", 1)
    assert infer_frequency(bdays, _starts(4)) == business and str(business) == "1bd"
    assert business.whole_days and Frequency("months", 1).whole_days
    assert Frequency("fixed", 7 * DAY).whole_days and not Frequency("fixed", HOUR).whole_days
    # a Saturday present, or weekdays with no weekend crossed: calendar days
    with_saturday = _times("2024-01-05", "2024-01-06", "2024-01-08", "2024-01-09")
    assert infer_frequency(with_saturday, _starts(4)) == Frequency("fixed", DAY)
    midweek_gap = _times("2024-01-01", "2024-01-02", "2024-01-05", "2024-01-08")
    assert infer_frequency(midweek_gap[:3], _starts(3)) == Frequency("fixed", DAY)
    last = np.array(["2024-01-04T16", "2024-01-08T09"], dtype="datetime64[us]")
    got = business.after(last, 3).astype(str).tolist()
    assert got == ["2024-01-05T16:00:00.000000", "2024-01-08T16:00:00.000000",
                   "2024-01-09T16:00:00.000000", "2024-01-09T09:00:00.000000",
                   "2024-01-10T09:00:00.000000", "2024-01-11T09:00:00.000000"]
    monday = pl.Series([datetime(2024, 1, 8, 9)])
    assert business.shift(monday, -1).to_list() == [datetime(2024, 1, 5, 9)]
    assert business.shift(monday, -6).to_list() == [datetime(2023, 12, 29, 9)]


def test_only_the_panels_own_time_types_take_the_arithmetic_fast_path():
    """Frequency.future adds steps to the physical values where one step is a fixed
    count of them (integer indexes, microsecond datetimes); other types go through
    calendar arithmetic, with the same result where both apply."""
    hourly, index = Frequency("fixed", 3_600_000_000), Frequency("index", 2)
    assert hourly._physical_step(pl.Datetime("us")) == 3_600_000_000
    assert index._physical_step(pl.Int64) == 2
    assert hourly._physical_step(pl.Datetime("ns")) is None
    assert index._physical_step(pl.Int32) is None
    assert hourly._physical_step(pl.Int64) is None
    assert index._physical_step(pl.Datetime("us")) is None
    assert Frequency("months", 1)._physical_step(pl.Datetime("us")) is None
    last = pl.Series("ds", [datetime(2024, 1, 1, 23), datetime(2024, 3, 1)],
                     dtype=pl.Datetime("us"))
    fast = hourly.future(last, 3)
    slow = hourly.future(last.cast(pl.Datetime("ns")), 3).cast(pl.Datetime("us"))
    assert fast.dtype == pl.Datetime("us") and fast.name == slow.name == "ds"
    assert fast.to_list() == slow.to_list() == [
        datetime(2024, 1, 2, 0), datetime(2024, 1, 2, 1), datetime(2024, 1, 2, 2),
        datetime(2024, 3, 1, 1), datetime(2024, 3, 1, 2), datetime(2024, 3, 1, 3)]
    ints = index.future(pl.Series("t", [10, 100]), 2)
    assert ints.dtype == pl.Int64 and ints.to_list() == [12, 14, 102, 104]
