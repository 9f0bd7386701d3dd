"""The frame boundary: pandas or polars in, polars inside, the caller's library out.

Every public entry point that takes a dataframe passes it through
:func:`to_polars` once and hands results back through :func:`from_polars`, so
the rest of the toolkit deals with one library. Converting never mutates the
caller's frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Union

import pandas as pd
import polars as pl

FrameKind = Literal["pandas", "polars"]
FrameLike = Union[pd.DataFrame, pl.DataFrame, pl.LazyFrame]  # noqa: UP007 (runtime alias)

# The forecast columns every output frame uses: the point forecast, and one column
# per quantile level of a probabilistic head.
PRED_COL = "y_pred"


def quantile_column(level: float) -> str:
    """Column name of a quantile forecast, e.g. ``y_pred_q0.1``."""
    return f"{PRED_COL}_q{level:g}"


def to_polars(df: object, name: str = "df") -> tuple[pl.DataFrame, FrameKind]:
    """Return an eager polars copy-on-write view of ``df`` and the library it came from."""
    if isinstance(df, pl.LazyFrame):
        return df.collect(), "polars"
    if isinstance(df, pl.DataFrame):
        return df, "polars"
    if isinstance(df, pd.DataFrame):
        if not all(isinstance(c, str) for c in df.columns):
            bad = [c for c in df.columns if not isinstance(c, str)][:5]
            raise TypeError(
                f"{name} column names must be strings. Got {bad!r}; rename them, e.g. "
                f"df.columns = df.columns.astype(str)."
            )
        try:
            return pl.from_pandas(df.reset_index(drop=True)), "pandas"
        except (TypeError, ValueError, pl.exceptions.PolarsError) as err:
            raise TypeError(
                f"{name} could not be read: a column mixes value types ({err}). "
                f"Give every column a single type."
            ) from err
    raise TypeError(
        f"{name} must be a pandas DataFrame or a polars DataFrame/LazyFrame. "
        f"Got {type(df).__name__}."
    )


def from_polars(df: pl.DataFrame, kind: FrameKind) -> pd.DataFrame | pl.DataFrame:
    """Return ``df`` in the library named by ``kind``."""
    return df.to_pandas() if kind == "pandas" else df


def wide_to_long(
    df: FrameLike,
    *,
    time_col: str = "ds",
    value_cols: Sequence[str] | None = None,
    id_col: str = "unique_id",
    target_col: str = "y",
) -> pd.DataFrame | pl.DataFrame:
    """One column per series -> long frame ``(id_col, time_col, target_col)``.

    ``value_cols`` defaults to every column except ``time_col``; each becomes a
    series whose id is the column name. Example: the ETT files
    (``date, HUFL, ..., OT``) with ``time_col="date"``.
    """
    frame, kind = to_polars(df)
    if time_col not in frame.columns:
        raise ValueError(f"Column {time_col!r} (time_col) is missing. Got {frame.columns}.")
    values = list(value_cols) if value_cols is not None else [
        c for c in frame.columns if c != time_col]
    missing = [c for c in values if c not in frame.columns]
    if missing:
        raise ValueError(f"The following value columns are missing: {missing}.")
    long = frame.unpivot(index=time_col, on=values, variable_name=id_col, value_name=target_col)
    return from_polars(long.select(id_col, time_col, target_col), kind)


def long_to_wide(
    df: FrameLike, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y"
) -> pd.DataFrame | pl.DataFrame:
    """Long frame -> one column per series id, rows sorted by time."""
    frame, kind = to_polars(df)
    missing = [c for c in (id_col, time_col, target_col) if c not in frame.columns]
    if missing:
        raise ValueError(f"The following columns are missing: {missing}.")
    wide = frame.with_columns(pl.col(id_col).cast(pl.String)).pivot(
        on=id_col, index=time_col, values=target_col).sort(time_col)
    return from_polars(wide, kind)


def rows_to_long(
    df: FrameLike, *, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y"
) -> pd.DataFrame | pl.DataFrame:
    """One row per series (``id_col``, then values in time order) -> long frame.

    The layout of the M4 competition files: series of different lengths are padded
    with trailing nulls, which are dropped; a null between two values stays (a
    missing observation for ``target_missing`` to handle). The time is the integer
    position 0, 1, ... in each row.
    """
    frame, kind = to_polars(df)
    if id_col not in frame.columns:
        raise ValueError(f"Column {id_col!r} (id_col) is missing. Got {frame.columns[:5]}...")
    values = [c for c in frame.columns if c != id_col]
    bad = [c for c in values if not (frame[c].dtype.is_numeric() or frame[c].dtype == pl.Null)]
    if bad:
        raise TypeError(f"Value columns must be numeric; {bad[:3]} are not (a header row "
                        f"inside the data, or a misplaced id column?).")
    long = frame.with_columns(pl.col(values).cast(pl.Float64)).unpivot(
        index=id_col, on=values, variable_name="__col", value_name=target_col)
    position = {c: j for j, c in enumerate(values)}
    long = long.with_columns(
        pl.col("__col").replace_strict(position, return_dtype=pl.Int64).alias(time_col))
    last = long.filter(pl.col(target_col).is_not_null()).group_by(id_col).agg(
        pl.col(time_col).max().alias("__last"))
    long = long.join(last, on=id_col).filter(pl.col(time_col) <= pl.col("__last"))
    return from_polars(long.sort(id_col, time_col).select(id_col, time_col, target_col), kind)
