"""Validated panels of time series, stored contiguously per series (CSR layout).

:func:`prepare_series` is the one place a long frame is checked and converted:
it sorts (never rejects unsorted input), checks columns, types, duplicates,
spacing and missing values, and returns a :class:`SeriesData` whose arrays hold
all series back to back, ``indptr`` marking where each one starts. Every error
names the column, the offending series ids and the fix.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import polars as pl
import torch

from .covariates import (
    calendar_column,
    calendar_expressions,
    encode_static,
    one_hot_categories,
)
from .frames import FrameLike, to_polars
from .freq import Frequency, infer_frequency
from .panel import (
    _MAX_LISTED,
    Columns,
    FillMissing,
    SeriesData,
    TargetMissing,
    _listed,
)
from .times import _check_object_times, as_long_frame, time_zone_of


def _check_columns(frame: pl.DataFrame, cols: Columns, future: Sequence[str],
                   past: Sequence[str]) -> None:
    required = [cols.time_col, cols.target_col, *future, *past]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        raise ValueError(
            f"The following columns are missing from df: {missing}. Columns present: "
            f"{frame.columns}. Pass id_col/time_col/target_col or the covariate lists to match."
        )
    roles = [cols.id_col, cols.time_col, cols.target_col, *future, *past]
    duplicated = sorted({c for c in roles if roles.count(c) > 1})
    if duplicated:
        raise ValueError(f"Columns {duplicated} are given more than one role; give each one role.")
    for name, role in [(cols.target_col, "target_col"), *((c, "covariate") for c in future),
                       *((c, "covariate") for c in past)]:
        dtype = frame[name].dtype
        if not dtype.is_numeric() or dtype == pl.Boolean:
            raise TypeError(
                f"Column {name!r} ({role}) must be numeric. Got {dtype}. Convert it, "
                f"e.g. encode categories as numbers or pass them as static covariates."
            )


def _only(frame: pl.DataFrame, names: list[str]) -> pl.DataFrame:
    """``frame`` with the columns ``names``, in that order. frame[names] rather than
    select() (~10x cheaper on the small frames of streamed updates), and nothing where
    the frame already is that."""
    return frame if frame.columns == names else frame[names]


@dataclass(frozen=True)
class _Keys:
    """Series of each row as an integer code: the rank of its id among the sorted ids.

    Row-level work compares these int64 codes; the ids themselves (``names``, one per
    series) are only looked up for messages. Materialising millions of string ids as
    Python objects would cost more than all the checks together.
    """

    codes: np.ndarray  # (N,) int64, non-decreasing once the frame is sorted
    names: pl.Series  # (n,) sorted unique ids

    def ids_where(self, rows: np.ndarray) -> list:
        """Distinct ids of the rows selected by a boolean mask or index array."""
        return self.names.gather(np.unique(self.codes[rows])).to_list()


def _sort_by_series(frame: pl.DataFrame, cols: Columns) -> tuple[pl.DataFrame, _Keys]:
    """Order rows by (id, time). Panels whose series are already contiguous (the usual
    layout) are reordered block-wise, or not at all, without a full sort."""
    ids = frame[cols.id_col]
    if frame.height == 1:  # one new observation (streaming): nothing to order
        return frame, _Keys(np.zeros(1, dtype=np.int64), ids)
    change = ids.ne_missing(ids.shift(1)).to_numpy()  # True where a run of one id starts
    runs = np.flatnonzero(change)
    run_ids = ids.gather(runs)
    if run_ids.n_unique() == len(runs):  # every series contiguous
        lengths = np.diff(np.append(runs, len(ids)))
        order = run_ids.arg_sort().to_numpy()
        names = run_ids.gather(order)
        if not np.array_equal(order, np.arange(len(runs))):
            lengths = lengths[order]
            block_start = np.repeat(runs[order] - (np.cumsum(lengths) - lengths), lengths)
            frame = frame[block_start + np.arange(len(ids))]
        codes = np.repeat(np.arange(len(runs), dtype=np.int64), lengths)
    else:
        names = ids.unique().sort()
        if ids.dtype == pl.String:
            codes = ids.cast(pl.Enum(names.to_list())).to_physical().to_numpy().astype(np.int64)
        else:
            codes = np.searchsorted(names.to_numpy(), ids.to_numpy()).astype(np.int64)
    t = frame[cols.time_col].to_physical().to_numpy()
    step_code, step_time = np.diff(codes), np.diff(t)
    if not np.all((step_code > 0) | ((step_code == 0) & (step_time >= 0))):
        span = int(t.max()) - int(t.min()) + 1
        if len(names) * span < 2**62:  # one int64 key sorts faster than two columns
            order = pl.Series(codes * span + (t - t.min())).arg_sort().to_numpy()
        else:
            order = pl.DataFrame({"c": codes, "t": t}).select(
                pl.int_range(pl.len()).sort_by("c", "t"))[:, 0].to_numpy()
        frame, codes = frame[order], codes[order]
    return frame, _Keys(codes, names)


def _grid_checks(frame: pl.DataFrame, cols: Columns, keys: _Keys, freq: Frequency | None,
                 fill_missing: FillMissing | None, zone: str | None = None
                 ) -> tuple[pl.DataFrame, Frequency | None]:
    """Duplicates, frequency, irregular spacing and gaps (filled on request); ``zone``
    (the caller's time zone, times held in UTC) only words the irregular-spacing error."""
    codes = keys.codes
    times = frame[cols.time_col].to_numpy()
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = codes[1:] != codes[:-1]

    same = ~starts[1:] & (times[1:] == times[:-1])
    if same.any():
        rows = np.flatnonzero(same) + 1
        names = keys.names.gather(codes[rows[:_MAX_LISTED]]).to_list()
        pairs = [(name, str(times[r])) for name, r in zip(names, rows, strict=False)]
        raise ValueError(
            f"df has {len(rows)} duplicate ({cols.id_col}, {cols.time_col}) pairs, e.g. "
            f"{_listed(pairs)}. Aggregate or drop duplicates before fitting."
        )
    if freq is None:
        freq = infer_frequency(times, starts)
    if freq is None:
        return frame, None
    if starts.all() and freq.kind != "business_days":
        return frame, freq  # one row per series (a streamed step): no spacing to check

    # Check consecutive pairs within a series: a time is on the grid iff every step
    # before it is a whole number of frequency steps (and, for months, keeps the day).
    inner = ~starts[1:]
    rows = np.flatnonzero(inner) + 1  # second row of each within-series pair
    if freq.kind == "months":
        months = times.astype("datetime64[M]")
        diffs = np.diff(months.astype(np.int64))[inner]
        day = (times.astype("datetime64[D]") - months.astype("datetime64[D]")).astype(np.int64)
        month_end = frame.select(pl.col(cols.time_col).dt.month_end() == pl.col(cols.time_col))
        eom = month_end.to_series().to_numpy()
        off_pair = (day[rows] != day[rows - 1]) & ~(eom[rows] & eom[rows - 1])
    elif freq.kind == "business_days":  # weekdays counted, the time of day kept
        days = times.astype("datetime64[D]")
        weekdays = np.busday_count(np.datetime64("1970-01-05"), days)  # from a Monday
        diffs = np.diff(weekdays)[inner]
        time_of_day = times - days
        off_pair = time_of_day[rows] != time_of_day[rows - 1]
    else:
        units = times.astype("datetime64[us]").astype(np.int64) if freq.kind == "fixed" else times
        diffs = np.diff(units)[inner]
        off_pair = np.zeros(len(diffs), dtype=bool)
    off_pair |= diffs % freq.step != 0
    step = diffs // freq.step
    within = rows
    off_grid = np.zeros(len(codes), dtype=bool)
    off_grid[rows[off_pair]] = True
    weekend = ~np.is_busday(days) if freq.kind == "business_days" else None
    if weekend is not None and weekend.any():
        bad = keys.ids_where(weekend)
        raise ValueError(
            f"Series {_listed(bad)} have times on a Saturday or Sunday, but the data's "
            f"frequency is business days ({freq}; column {cols.time_col!r}). Drop the "
            f"weekend rows or resample to calendar days."
        )
    if off_grid.any():
        bad = keys.ids_where(off_grid)
        hint = ""
        if zone is not None and freq.whole_days:
            # steps of whole days are 23 or 25 hours across a daylight-saving change
            hint = (f" The times are in time zone {zone!r}: daily and coarser data in a zone "
                    f"with daylight saving is not a regular grid of hours; drop the zone "
                    f"(pandas .dt.tz_localize(None), polars .dt.replace_time_zone(None)) or "
                    f"pass dates.")
        raise ValueError(
            f"Irregular spacing in series {_listed(bad)}: times off the inferred frequency "
            f"{freq} (column {cols.time_col!r}). Resample these series to a regular grid."
            + hint
        )
    gaps = step > 1
    if gaps.any():
        if fill_missing is None:
            bad = keys.ids_where(within[gaps])
            raise ValueError(
                f"Series {_listed(bad)} have gaps: {int((step[gaps] - 1).sum())} missing "
                f"time steps at the inferred frequency {freq} (column {cols.time_col!r}). "
                f"Pass fill_missing='nan' (masked), 'ffill' or 'zero' to fill them."
            )
        frame = _fill_gaps(frame, cols, freq, fill_missing)
    return frame, freq


def _fill_gaps(frame: pl.DataFrame, cols: Columns, freq: Frequency,
               fill_missing: FillMissing) -> pl.DataFrame:
    marked = frame.with_columns(pl.lit(False).alias("__inserted"))
    business = freq.kind == "business_days"  # upsampled by days, weekends dropped
    full = marked.upsample(cols.time_col, every="1d" if business else str(freq),
                           group_by=cols.id_col, maintain_order=True)
    if business:
        full = full.filter(pl.col(cols.time_col).dt.weekday() <= 5)
    full = full.with_columns(pl.col(cols.id_col).forward_fill(),
                             pl.col("__inserted").fill_null(True))
    covariates = [*cols.future, *cols.past]
    target = pl.col(cols.target_col)
    filled = {"nan": target, "zero": target.fill_null(0.0),
              "ffill": target.forward_fill().over(cols.id_col)}[fill_missing]
    return full.with_columns(filled, *(pl.col(c).forward_fill().over(cols.id_col)
                                       for c in covariates))


def _target_policy(frame: pl.DataFrame, cols: Columns, keys: _Keys, policy: TargetMissing,
                   fill_missing: FillMissing | None) -> tuple[np.ndarray, np.ndarray]:
    """Target values (float32, 0 where masked) and the observed mask (bool)."""
    # float64 to numpy turns nulls into NaN (cheaper than an explicit fill_null)
    y = np.array(frame[cols.target_col].cast(pl.Float64).to_numpy(), dtype=np.float64)
    missing = ~np.isfinite(y)
    inserted = (frame["__inserted"].to_numpy() if "__inserted" in frame.columns
                else np.zeros(len(y), dtype=bool))
    masked_by_fill = inserted & missing if fill_missing == "nan" else np.zeros_like(missing)
    huge = ~missing & (np.abs(np.where(missing, 0.0, y)) > np.finfo(np.float32).max)
    if huge.any():
        raise ValueError(
            f"Column {cols.target_col!r} (target_col) has {int(huge.sum())} values beyond the "
            f"float32 range (|y| > 3.4e38) in series {_listed(keys.ids_where(huge))}. "
            f"Rescale the target, e.g. divide it by a constant.")
    given = missing & ~masked_by_fill  # missing in the caller's data
    observed = ~masked_by_fill
    if given.any():
        if policy == "raise":
            raise ValueError(
                f"Column {cols.target_col!r} (target_col) has {int(given.sum())} missing or "
                f"infinite values in series {_listed(keys.ids_where(given))}. Pass "
                f"target_missing='mask' (kept out of the loss), 'ffill' or 'zero'."
            )
        if policy == "zero":
            y[given] = 0.0
        elif policy == "ffill":
            filled = pl.DataFrame({"id": keys.codes,
                                   "y": pl.Series(np.where(missing, np.nan, y)).fill_nan(None)})
            y = filled.select(pl.col("y").forward_fill().over("id"))["y"].fill_null(
                np.nan).to_numpy().copy()
        observed &= ~(given & ~np.isfinite(y))  # 'mask', and leading gaps 'ffill' cannot fill
    y[~observed] = 0.0
    return y.astype(np.float32), observed


def _covariate_array(frame: pl.DataFrame, keys: _Keys, names: Sequence[str]) -> torch.Tensor:
    if not names:
        return torch.zeros(frame.height, 0)
    values = np.array(frame.select(pl.col(c).cast(pl.Float32) for c in names).to_numpy(),
                      dtype=np.float32, order="C")
    bad = ~np.isfinite(values)
    if bad.any():
        column = names[int(np.flatnonzero(bad.any(axis=0))[0])]
        raise ValueError(
            f"Covariate column {column!r} has missing or infinite values in series "
            f"{_listed(keys.ids_where(bad.any(axis=1)))}. Fill them before fitting."
        )
    return torch.from_numpy(values)


def _static_array(static_df: FrameLike | None, ids: pl.Series, cols: Columns,
                  categories: dict[str, list[str]] | None):
    if static_df is None:
        return torch.zeros(len(ids), 0), (), {}
    static, _ = to_polars(static_df, "static_df")
    if cols.id_col not in static.columns:
        raise ValueError(f"static_df must have the id column {cols.id_col!r}.")
    names = [c for c in static.columns if c != cols.id_col]
    if static[cols.id_col].is_duplicated().any():
        dup = static[cols.id_col].filter(static[cols.id_col].is_duplicated()).unique()
        raise ValueError(f"static_df must have one row per series; ids {_listed(dup)} repeat.")
    static = static.with_columns(pl.col(cols.id_col).cast(ids.dtype, strict=False))
    joined = ids.to_frame(cols.id_col).join(static, on=cols.id_col, how="left",
                                            maintain_order="left")
    absent = ids.filter(~ids.is_in(static[cols.id_col].implode()))
    if len(absent):
        raise ValueError(f"static_df has no row for series {_listed(absent)}.")
    if categories is None:
        categories = one_hot_categories(joined, names)
    encoded = encode_static(joined, names, categories)
    values = np.array(encoded.to_numpy(), dtype=np.float32, order="C")
    if not np.isfinite(values).all():
        raise ValueError("static_df has missing or infinite numeric values; fill them.")
    return torch.from_numpy(values), tuple(encoded.columns), categories


def prepare_series(
    df: FrameLike,
    *,
    id_col: str = "unique_id",
    time_col: str = "ds",
    target_col: str = "y",
    future_covariates: Sequence[str] = (),
    past_covariates: Sequence[str] = (),
    static_df: FrameLike | None = None,
    calendar: Sequence[str] = (),
    fill_missing: FillMissing | None = None,
    target_missing: TargetMissing = "raise",
    freq: Frequency | None = None,
    static_categories: dict[str, list[str]] | None = None,
) -> SeriesData:
    """Validate a long frame and convert it to per-series contiguous float32 tensors.

    Args:
        df: pandas or polars (eager or lazy) long frame; unsorted input is sorted.
            Without ``id_col`` the frame is one series (id ``"series_0"``).
        id_col, time_col, target_col: column names.
        future_covariates: numeric columns known over the horizon.
        past_covariates: numeric columns observed up to the cutoff only.
        static_df: one row per series: ``id_col`` plus numeric or categorical
            columns (categoricals are one-hot encoded).
        calendar: calendar features to generate from ``time_col`` as future
            covariates, from :data:`~xlstm_ts.data.covariates.CALENDAR_FEATURES`.
        fill_missing: fill gaps in the time grid: ``"nan"`` (inserted steps masked),
            ``"ffill"`` or ``"zero"`` (target); covariates are forward-filled, on the
            inserted steps and wherever a covariate value is missing (NaN or null) in
            the given rows too: its last known value carries on. ``None`` rejects gaps.
        target_missing: NaN/inf/null targets: ``"raise"``, ``"mask"`` (kept out of
            the loss), ``"ffill"`` or ``"zero"``.
        freq: expected frequency; inferred when ``None``.
        static_categories: one-hot categories from a previous call (at predict time).

    Raises:
        TypeError: wrong frame type, non-numeric target or covariates, bad time type.
        ValueError: empty frame, missing columns, duplicates, irregular spacing, gaps,
            missing values, each naming the column, the series and the fix.
    """
    if fill_missing not in (None, "nan", "ffill", "zero"):
        raise ValueError(
            f"fill_missing must be None, 'nan', 'ffill' or 'zero'. Got {fill_missing!r}."
        )
    if target_missing not in ("raise", "mask", "ffill", "zero"):
        raise ValueError(
            f"target_missing must be 'raise', 'mask', 'ffill' or 'zero'. Got {target_missing!r}."
        )
    _check_object_times(df, time_col)
    frame, kind = to_polars(df)
    if frame.height == 0:
        raise ValueError("df is empty: it has no rows. Pass at least one observation per series.")
    future, past = tuple(future_covariates), tuple(past_covariates)
    cols = Columns(id_col, time_col, target_col, future, past)
    _check_columns(frame, cols, future, past)
    zone = time_zone_of(frame, time_col)
    dates = time_col in frame.columns and frame[time_col].dtype == pl.Date
    wanted = (id_col, time_col, target_col, *future, *past)
    frame = as_long_frame(_only(frame, [c for c in wanted if c in frame.columns]), id_col,
                          time_col)
    if frame[id_col].null_count():
        raise ValueError(f"Column {id_col!r} (id_col) has missing ids; every row needs one.")
    frame = _only(frame, list(wanted))
    if frame[time_col].null_count():
        bad = frame.filter(pl.col(time_col).is_null())[id_col].unique()
        raise ValueError(
            f"Column {time_col!r} (time_col) has missing times in series {_listed(bad)}."
        )
    frame, keys = _sort_by_series(frame, cols)
    frame, freq = _grid_checks(frame, cols, keys, freq, fill_missing, zone)
    if "__inserted" in frame.columns:  # gaps were filled: rows changed
        frame, keys = _sort_by_series(frame, cols)

    if calendar:
        if not frame[time_col].dtype == pl.Datetime("us"):
            raise ValueError("calendar features need a datetime time column; "
                             f"{time_col!r} holds integers.")
        frame = frame.with_columns(calendar_expressions(time_col, calendar, zone))
        future = (*future, *(calendar_column(c) for c in calendar))
        cols = replace(cols, future=future)

    target, observed = _target_policy(frame, cols, keys, target_missing, fill_missing)
    indptr = np.searchsorted(keys.codes, np.arange(len(keys.names) + 1)).astype(np.int64)
    static, static_names, categories = _static_array(static_df, keys.names, cols,
                                                     static_categories)
    return SeriesData(
        ids=keys.names.to_numpy(),
        indptr=indptr,
        times=frame[time_col].to_numpy(),
        target=torch.from_numpy(target),
        observed=torch.from_numpy(observed),
        past=_covariate_array(frame, keys, past),
        future=_covariate_array(frame, keys, future),
        static=static,
        freq=freq,
        columns=replace(cols, static=static_names),
        kind=kind,
        static_categories=categories,
        calendar=tuple(calendar),
        time_zone=zone,
        dates=dates,
    )


def check_min_length(data: SeriesData, min_length: int,
                     policy: Literal["raise", "drop"] = "raise") -> SeriesData:
    """Series shorter than ``min_length`` (e.g. lookback + horizon): raise listing them,
    or drop them with a warning that counts what was dropped."""
    short = data.lengths < min_length
    if not short.any():
        return data
    if policy == "raise":
        raise ValueError(
            f"{int(short.sum())} series are shorter than {min_length} steps, the fewest this "
            f"model trains on with its lookback, horizon and validation split: "
            f"{_listed(data.ids[short])}. Lower lookback, horizon or val_size (or leave "
            f"lookback unset: it is then sized to the data), or filter these series out."
        )
    if policy != "drop":
        raise ValueError(f"min_length policy must be 'raise' or 'drop'. Got {policy!r}.")
    if short.all():
        raise ValueError(f"Every series is shorter than {min_length} steps; nothing to fit.")
    warnings.warn(
        f"Dropped {int(short.sum())} of {data.n_series} series shorter than {min_length} "
        f"steps ({int(data.lengths[short].sum())} rows): {_listed(data.ids[short])}.",
        UserWarning, stacklevel=2,
    )
    return data.subset(~short)


def check_compatible(fitted: SeriesData, new: SeriesData, *, allow_new_ids: bool = False) -> None:
    """Data given after fit must match it: the same frequency and, unless
    ``allow_new_ids`` (a global model forecasting new series), known series ids."""
    # ids equal to the fitted ones (a streamed step of every series) skip the set work
    unknown = () if np.array_equal(new.ids, fitted.ids) else np.setdiff1d(
        new.ids.astype(str), fitted.ids.astype(str))
    if len(unknown) and not allow_new_ids:
        raise ValueError(
            f"{len(unknown)} series ids were not seen in fit: {_listed(unknown)}. "
            f"Refit with these series, or leave them out."
        )
    if (new.time_zone is None) != (fitted.time_zone is None):
        aware, naive = ("the new data", "fit") if new.time_zone else ("fit", "the new data")
        raise ValueError(
            f"Column {fitted.columns.time_col!r} (time_col) holds time-zone-aware times in "
            f"{aware} but naive times in {naive}. Use one convention: localise the naive "
            f"times (e.g. .dt.tz_localize) or drop the zone from both.")
    if new.freq is not None and fitted.freq is not None and new.freq != fitted.freq:
        raise ValueError(
            f"The data has frequency {new.freq} but the model was fitted on {fitted.freq} "
            f"(column {fitted.columns.time_col!r}). Resample to {fitted.freq}."
        )
