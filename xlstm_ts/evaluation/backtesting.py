"""Rolling-origin backtests, scores and the errors that calibrate a forecaster's bands.

The functions take any fitted-or-not estimator with the XLSTMForecaster contract
(``fit``, ``predict``, ``horizon``, ``id_col``, ``time_col``, ``target_col``);
the estimator's methods of the same names are thin wrappers around them.
"""

from __future__ import annotations

import warnings

import numpy as np
import polars as pl
from sklearn.base import clone

from .._checks import check_positive_int
from ..calibration import spread_from_moments
from ..data.frames import PRED_COL, from_polars, to_polars
from ..data.freq import infer_frequency
from ..data.times import as_long_frame
from .metrics import evaluate


class InSampleWarning(UserWarning):
    """Evaluation windows whose actuals lie inside the data the model was fitted on:
    their errors are in-sample, smaller than the errors on new data will be."""


def _seen_until(model, like: pl.Series) -> pl.DataFrame:
    """(id as string, ``__seen``): the last time of each series the fitted model's
    history holds, in the dtype of the time column ``like``."""
    data = model.data_
    return pl.DataFrame({"__id": pl.Series(data.ids).cast(pl.String),
                         "__seen": pl.Series(data.last_times()).cast(like.dtype)})


def _count_in_sample(model, actual: pl.DataFrame) -> int:
    """Rows of ``actual`` at or before the end of the model's history for their series."""
    keyed = actual.select(pl.col(model.id_col).cast(pl.String).alias("__id"),
                          pl.col(model.time_col))
    joined = keyed.join(_seen_until(model, actual[model.time_col]), on="__id", how="inner")
    return int(joined.filter(pl.col(model.time_col) <= pl.col("__seen")).height)


def _grid(model, frame: pl.DataFrame):
    """The time grid of the windows: the fitted model's frequency, else the frame's."""
    if hasattr(model, "network_") and model.freq_ is not None:
        return model.freq_
    times = frame[model.time_col].to_numpy()
    ids = frame[model.id_col].to_numpy()
    starts = np.ones(len(ids), dtype=bool)
    starts[1:] = ids[1:] != ids[:-1]
    freq = infer_frequency(times, starts)
    if freq is None:
        raise ValueError("backtest needs series of two or more points to find their time "
                         "step.")
    return freq


def _future_rows(model, freq, cutoffs: pl.DataFrame, actual: pl.DataFrame) -> pl.DataFrame:
    """The window's future-known covariates on every grid step after the cutoff; steps
    missing from the data (gaps) take the nearest known value of their series, as
    ``fill_missing`` does for the history. ``cutoffs``: (id, ``cutoff``) per series."""
    grid = pl.DataFrame({model.id_col: cutoffs[model.id_col].gather(
        np.repeat(np.arange(cutoffs.height), model.horizon)),
        model.time_col: freq.future(cutoffs["cutoff"], model.horizon)})
    grid = grid.with_columns(pl.col(model.time_col).cast(actual[model.time_col].dtype))
    covariates = list(model.future_covariates)
    rows = grid.join(actual.select(model.id_col, model.time_col, *covariates),
                     on=[model.id_col, model.time_col], how="left", maintain_order="left")
    return rows.with_columns(pl.col(c).forward_fill().backward_fill().over(model.id_col)
                             for c in covariates)


BASELINES = ("naive", "seasonal_naive")


def backtest(model, df, n_windows: int = 3, step: int | None = None,
             refit: bool | int = False, static_df=None, baseline: str | None = None,
             level: tuple[float, ...] = ()):
    """Forecasts at the last ``n_windows`` cutoffs of every series with ``cutoff`` and
    the actual target, the ``baseline``'s forecast from the same history (a column
    of that name) and the bands of each ``level``; see :meth:`XLSTMForecaster.backtest`.

    An unfitted ``model`` is cloned first, so the caller's estimator stays unfitted.
    Windows whose actuals the model was fitted on raise an :class:`InSampleWarning`.
    """
    check_positive_int("n_windows", n_windows)
    if baseline is not None and baseline not in BASELINES:
        raise ValueError(f"baseline must be None, 'naive' or 'seasonal_naive'. Got {baseline!r}.")
    step = model.horizon if step is None else check_positive_int("step", step)
    if isinstance(refit, bool):
        refit_every = 1 if refit else 0
    else:
        refit_every = check_positive_int("refit", refit)
    if not hasattr(model, "network_"):
        model = clone(model)
    frame, kind = to_polars(df)
    dates = model.time_col in frame.columns and frame[model.time_col].dtype == pl.Date
    # parsed times, so forecasts (datetimes) join the actuals even for string dates
    frame = as_long_frame(frame, model.id_col, model.time_col).sort(model.id_col,
                                                                    model.time_col)
    freq = _grid(model, frame)
    last = frame.group_by(model.id_col, maintain_order=True).agg(
        pl.col(model.time_col).max().alias("__last"))
    results, in_sample, scored = [], 0, 0
    for k in range(n_windows):
        offset = model.horizon + (n_windows - 1 - k) * step  # grid steps after the cutoff
        bounds = last.with_columns(freq.shift(last["__last"], -offset).alias("__cut"),
                                   freq.shift(last["__last"], model.horizon - offset)
                                   .alias("__end"))
        framed = frame.join(bounds, on=model.id_col, how="left")
        history = framed.filter(pl.col(model.time_col) <= pl.col("__cut"))
        actual = framed.filter((pl.col(model.time_col) > pl.col("__cut"))
                               & (pl.col(model.time_col) <= pl.col("__end")))
        history, actual = (f.drop("__last", "__cut", "__end") for f in (history, actual))
        if (refit_every and k % refit_every == 0) or not hasattr(model, "network_"):
            model.fit(history, static_df=static_df)
        in_sample += _count_in_sample(model, actual)
        scored += actual.height
        cutoffs = history.group_by(model.id_col, maintain_order=True).agg(
            pl.col(model.time_col).max().alias("cutoff"))  # each series' last history time
        future = (_future_rows(model, freq, cutoffs, actual)
                  if (model.future_covariates or model.calendar) else None)
        forecast, _ = to_polars(model.predict(df=history, future_df=future,
                                              static_df=static_df,
                                              **({"level": level} if level else {})))
        forecast = forecast.with_columns(pl.col(model.time_col).cast(
            actual[model.time_col].dtype))
        if baseline is not None:
            forecast = forecast.join(_baseline(model, baseline, freq, history),
                                     on=[model.id_col, model.time_col], how="left")
        joined = forecast.join(cutoffs, on=model.id_col).join(
            actual.select(model.id_col, model.time_col, model.target_col),
            on=[model.id_col, model.time_col], how="left")
        results.append(joined)
    if in_sample:
        warnings.warn(
            f"{in_sample} of the {scored} actuals scored lie inside the data the model was "
            f"fitted on, so these errors are in-sample and smaller than on new data. Fit on "
            f"the history before the windows (refit=True, or fit on an earlier cut) for an "
            f"honest estimate.", InSampleWarning, stacklevel=3)
    out = pl.concat(results).select(model.id_col, model.time_col, "cutoff", model.target_col,
                                    pl.exclude(model.id_col, model.time_col, "cutoff",
                                               model.target_col))
    if dates:  # dates in, dates out: joins back to the caller's frame
        out = out.with_columns(pl.col(model.time_col, "cutoff").cast(pl.Date))
    return from_polars(out, kind)


def _baseline(model, name: str, freq, history: pl.DataFrame) -> pl.DataFrame:
    """The ``name`` baseline's forecast over the model's horizon from ``history``: the
    column ``name`` beside the id and time. Seasonal naive repeats the data's first
    usual cycle (a day of hourly data, a week of daily, a year of monthly); naive where
    there is none or a series is shorter than it."""
    from ..presets import seasonal_periods
    from .baselines import Naive, SeasonalNaive

    periods = seasonal_periods(freq) if name == "seasonal_naive" else ()
    shortest = history.group_by(model.id_col).len()["len"].min()
    options = {"id_col": model.id_col, "time_col": model.time_col,
               "target_col": model.target_col, "fill_missing": model.fill_missing}
    table = history.select(model.id_col, model.time_col, model.target_col)
    fitted = (SeasonalNaive(periods[0], **options) if periods and shortest >= periods[0]
              else Naive(**options)).fit(table)
    out, _ = to_polars(fitted.predict(model.horizon))
    return out.rename({PRED_COL: name}).with_columns(
        pl.col(model.time_col).cast(history[model.time_col].dtype))


def forecast_error(model, df, metric: str = "mae", static_df=None) -> float:
    """``metric`` of the fitted model's forecasts for the last ``horizon`` steps of each
    series of ``df``, made from the history before them (lower is better)."""
    forecasts = backtest(model, df, n_windows=1, refit=False, static_df=static_df)
    return evaluate(forecasts, metrics=(metric,), id_col=model.id_col,
                    target_col=model.target_col)[metric]


def conformal_errors(model, df, n_windows: int = 5, step: int | None = None,
                     static_df=None) -> np.ndarray:
    """(windows x series, horizon) signed backtest errors ``(actual - forecast) /
    spread`` of the fitted model, by horizon step (NaN where a window had no actual):
    each divided by the spread of the history its forecast read (the mean absolute
    change of the last ``context_steps_`` observed values before its cutoff;
    :func:`xlstm_ts.calibration.spread`)."""
    forecasts = backtest(model, df, n_windows=n_windows, step=step, refit=False,
                         static_df=static_df)
    frame, _ = to_polars(forecasts)
    frame = frame.with_columns(
        pl.int_range(pl.len()).over(model.id_col, "cutoff").alias("__step"))
    history, _ = to_polars(df)
    history = as_long_frame(history, model.id_col, model.time_col).select(
        model.id_col, model.time_col, pl.col(model.target_col).cast(pl.Float64)
        .fill_nan(None).alias("__y"))
    cutoffs = frame.select(model.id_col, pl.col("cutoff").cast(history[model.time_col].dtype)
                           ).unique(maintain_order=True)
    recent = (cutoffs.join(history, on=model.id_col)
              .filter(pl.col(model.time_col) <= pl.col("cutoff")).drop_nulls("__y")
              .sort(model.id_col, "cutoff", model.time_col)
              .group_by(model.id_col, "cutoff", maintain_order=True)
              .agg(pl.col("__y").tail(model.context_steps_).diff().abs().mean().alias("__change"),
                   pl.col("__y").tail(model.context_steps_).abs().mean().alias("__mag")))
    spreads = recent.with_columns(pl.Series("__spread", spread_from_moments(
        recent["__change"].fill_null(0.0).to_numpy(),
        recent["__mag"].fill_null(0.0).to_numpy())))
    frame = frame.with_columns(pl.col("cutoff").cast(history[model.time_col].dtype)).join(
        spreads.select(model.id_col, "cutoff", "__spread"), on=[model.id_col, "cutoff"],
        how="left", maintain_order="left")
    frame = frame.with_columns(((pl.col(model.target_col) - pl.col(PRED_COL))
                                / pl.col("__spread")).alias("__err"))
    errors = np.full((frame.height // model.horizon, model.horizon), np.nan)
    for h in range(model.horizon):
        err = frame.filter(pl.col("__step") == h)["__err"].fill_null(np.nan).to_numpy()
        errors[: len(err), h] = err
    return errors
