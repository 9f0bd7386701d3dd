"""Covariates derived from the data: calendar features and static encodings."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

# name -> (expression on a datetime column, number of distinct values - 1), scaled to [-0.5, 0.5]
_CALENDAR = {
    "minute": (lambda t: t.dt.minute(), 59),
    "hour": (lambda t: t.dt.hour(), 23),
    "dayofweek": (lambda t: t.dt.weekday() - 1, 6),
    "dayofmonth": (lambda t: t.dt.day() - 1, 30),
    "dayofyear": (lambda t: t.dt.ordinal_day() - 1, 365),
    "weekofyear": (lambda t: t.dt.week() - 1, 52),
    "month": (lambda t: t.dt.month() - 1, 11),
}
CALENDAR_FEATURES = tuple(_CALENDAR)
_CALENDAR_PREFIX = "cal_"  # generated columns, told apart from the caller's by name


def calendar_column(feature: str) -> str:
    """The column name of a calendar feature, e.g. ``cal_hour``."""
    return _CALENDAR_PREFIX + feature


def is_calendar_column(name: object) -> bool:
    """Whether a future covariate column is a generated calendar feature."""
    return str(name).startswith(_CALENDAR_PREFIX)


def calendar_expressions(time_col: str, names: Sequence[str],
                         time_zone: str | None = None) -> list[pl.Expr]:
    """Expressions adding :func:`calendar_column` columns in [-0.5, 0.5] from a datetime column;
    with ``time_zone``, the column holds naive UTC and the features are read on the
    wall clock of that zone (the hour of day of the caller's data, across daylight
    saving changes too)."""
    unknown = [n for n in names if n not in _CALENDAR]
    if unknown:
        raise ValueError(f"Unknown calendar features {unknown}. Choose from {list(_CALENDAR)}.")
    times = pl.col(time_col)
    if time_zone is not None:
        times = times.dt.replace_time_zone("UTC").dt.convert_time_zone(time_zone)
    exprs = []
    for name in names:
        value, top = _CALENDAR[name]
        exprs.append((value(times).cast(pl.Float32) / top - 0.5).alias(calendar_column(name)))
    return exprs


def one_hot_categories(frame: pl.DataFrame, columns: Sequence[str]) -> dict[str, list[str]]:
    """Sorted category values of each non-numeric column, the encoding's fitted state."""
    return {c: sorted(frame[c].cast(pl.String).unique().drop_nulls().to_list())
            for c in columns if not frame[c].dtype.is_numeric()}


def encode_static(frame: pl.DataFrame, columns: Sequence[str],
                  categories: dict[str, list[str]]) -> pl.DataFrame:
    """Numeric columns as float32, categorical ones one-hot against ``categories``."""
    exprs = []
    for c in columns:
        if c in categories:
            exprs += [(pl.col(c).cast(pl.String) == v).cast(pl.Float32).alias(f"{c}={v}")
                      for v in categories[c]]
        else:
            exprs.append(pl.col(c).cast(pl.Float32))
    return frame.select(exprs)
