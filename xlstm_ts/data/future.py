"""Covariates known over the horizon: the (n, H, F) values a forecast needs, from the
caller's ``future_df`` and the generated calendar columns."""

from __future__ import annotations

import numpy as np
import polars as pl
import torch

from .covariates import (
    calendar_expressions,
)
from .frames import FrameLike, to_polars
from .panel import SeriesData, _listed
from .times import as_long_frame


def future_covariates(fitted: SeriesData, data: SeriesData, future_df: FrameLike | None,
                      horizon: int) -> torch.Tensor:
    """Future-known covariates over the horizon after each series of ``data``.

    Returns (n, H, F) in the fitted column order; calendar columns are generated,
    the others read from ``future_df`` (id, time and covariate columns), which must
    hold every one of the ``horizon`` steps after each series' last time.
    """
    cols = fitted.columns
    given = list(cols.given_future)
    n = data.n_series
    if not cols.future:
        return torch.zeros(n, horizon, 0)
    if data.freq is None:
        raise ValueError("Cannot step time forward: every series has a single point.")
    last = pl.Series(data.last_times())
    grid = pl.DataFrame({cols.id_col: np.repeat(data.ids, horizon),
                         cols.time_col: data.freq.future(last, horizon)})
    if fitted.calendar:
        grid = grid.with_columns(calendar_expressions(cols.time_col, fitted.calendar,
                                                      fitted.time_zone))
    if given:
        if future_df is None:
            raise ValueError(
                f"The model uses future covariates {given}: pass future_df with columns "
                f"{[cols.id_col, cols.time_col, *given]} covering the {horizon} steps ahead."
            )
        future, _ = to_polars(future_df, "future_df")
        if cols.id_col not in future.columns and n == 1:  # one series: the id may be left out
            future = future.with_columns(pl.lit(data.ids[0]).alias(cols.id_col))
        missing = [c for c in (cols.id_col, cols.time_col, *given) if c not in future.columns]
        if missing:
            raise ValueError(f"The following columns are missing from future_df: {missing}.")
        unknown = np.setdiff1d(future[cols.id_col].unique().cast(pl.String).to_numpy(),
                               data.ids.astype(str))
        if len(unknown):
            raise ValueError(f"future_df has series ids without history: {_listed(unknown)}. "
                             f"Pass their history in df, or leave them out of future_df.")
        future = as_long_frame(future.select(cols.id_col, cols.time_col, *given),
                               cols.id_col, cols.time_col)
        future = future.with_columns(pl.col(cols.id_col).cast(grid[cols.id_col].dtype))
        grid = grid.join(future, on=[cols.id_col, cols.time_col], how="left",
                         maintain_order="left")
        holes = grid.select(pl.any_horizontal(pl.col(given).is_null()))[:, 0].to_numpy()
        if holes.any():
            bad = grid.filter(pl.Series(holes))
            raise ValueError(
                f"future_df lacks covariate values for {int(holes.sum())} horizon steps, "
                f"e.g. series {_listed(bad[cols.id_col].unique(maintain_order=True))} at "
                f"{bad[cols.time_col][0]}. Provide {given} for all {horizon} steps after each "
                f"series' last time."
            )
        given_values = grid.select(pl.col(c).cast(pl.Float64) for c in given).to_numpy()
        bad = ~np.isfinite(given_values)
        if bad.any():
            column = given[int(np.flatnonzero(bad.any(axis=0))[0])]
            rows = bad.any(axis=1)
            raise ValueError(
                f"future_df column {column!r} has NaN or infinite values over the horizon of "
                f"series {_listed(grid.filter(pl.Series(rows))[cols.id_col].unique())}. "
                f"Fill them before forecasting.")
    values = grid.select(pl.col(c).cast(pl.Float32) for c in cols.future).to_numpy()
    return torch.from_numpy(np.array(values, dtype=np.float32)).reshape(n, horizon, -1)
