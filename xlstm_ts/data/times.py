"""Time columns: parsing, time zones and the single-series id, so that every frame
reaching the validation has one time type (``Datetime(us)`` naive UTC or ``Int64``)."""

from __future__ import annotations

import pandas as pd
import polars as pl

from .panel import _MAX_LISTED, SINGLE_SERIES_ID, _listed


def _check_object_times(df: object, time_col: str) -> None:
    """pandas object columns can mix types that polars would coerce silently."""
    if isinstance(df, pd.DataFrame) and time_col in df.columns and df[time_col].dtype == object:
        kind = pd.api.types.infer_dtype(df[time_col], skipna=True)
        if kind not in ("string", "datetime", "datetime64", "date", "integer"):
            raise ValueError(
                f"Column {time_col!r} (time_col) mixes value types ({kind}). Use one type for "
                f"the whole column: datetimes, ISO strings or integers."
            )


def as_long_frame(frame: pl.DataFrame, id_col: str, time_col: str) -> pl.DataFrame:
    """The frame as a panel: the single-series id added when ``id_col`` is absent, ids of
    an enum or categorical type as strings (their category order is not their sort
    order), and times normalised by :func:`normalise_time`."""
    if time_col not in frame.columns:
        raise ValueError(f"df has no time column {time_col!r} (time_col).")
    if id_col not in frame.columns:
        frame = frame.with_columns(pl.lit(SINGLE_SERIES_ID).alias(id_col))
    if isinstance(frame[id_col].dtype, (pl.Enum, pl.Categorical)):
        frame = frame.with_columns(pl.col(id_col).cast(pl.String))
    return normalise_time(frame, time_col)


def time_zone_of(frame: pl.DataFrame, time_col: str) -> str | None:
    """The time zone of ``time_col`` (None for naive times, dates and integers)."""
    dtype = frame[time_col].dtype
    return dtype.time_zone if isinstance(dtype, pl.Datetime) else None


def normalise_time(frame: pl.DataFrame, time_col: str) -> pl.DataFrame:
    """The frame with ``time_col`` as Datetime(us) or Int64, strings parsed."""
    dtype = frame[time_col].dtype
    if dtype == pl.Int64 or (isinstance(dtype, pl.Datetime) and dtype.time_unit == "us"
                             and dtype.time_zone is None):
        return frame  # already normalised (a no-op cast still costs a query)
    col = pl.col(time_col)
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
            col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return frame.with_columns(col.cast(pl.Datetime("us")))
    if dtype.is_integer():
        return frame.with_columns(col.cast(pl.Int64))
    if dtype == pl.String:
        try:
            return frame.with_columns(col.str.to_datetime(strict=True).cast(pl.Datetime("us")))
        except pl.exceptions.PolarsError:
            pass
        # pandas' parser knows more layouts (e.g. "1950-10" for a month)
        raw = frame[time_col].to_pandas()
        parsed = pd.to_datetime(raw, errors="coerce")
        bad = raw[parsed.isna() & raw.notna()]
        if len(bad):
            raise ValueError(
                f"Column {time_col!r} (time_col) holds values that are not parseable times, "
                f"e.g. {_listed(bad.unique()[:_MAX_LISTED])}. Use ISO 8601 strings, datetimes "
                f"or integers, one format for the whole column."
            )
        return frame.with_columns(pl.Series(time_col, parsed).cast(pl.Datetime("us")))
    raise TypeError(
        f"Column {time_col!r} (time_col) must hold datetimes, dates, ISO strings or integers. "
        f"Got {dtype}. Convert it, e.g. with pd.to_datetime."
    )
