"""Rolling-origin backtests, scores and split-conformal calibration of a forecaster.

The functions take any fitted-or-not estimator with the XLSTMForecaster contract
(``fit``, ``predict``, ``horizon``, ``id_col``, ``time_col``, ``target_col``);
the estimator's methods of the same names are thin wrappers around them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from .._checks import check_positive_int
from ..data.frames import PRED_COL, from_polars, to_polars
from ..data.series import as_long_frame
from .metrics import evaluate


def backtest(model, df, n_windows: int = 3, step: int | None = None,
             refit: bool | int = False, static_df=None):
    """Forecasts at the last ``n_windows`` cutoffs of every series with ``cutoff`` and
    the actual target; see :meth:`XLSTMForecaster.backtest`."""
    check_positive_int("n_windows", n_windows)
    step = model.horizon if step is None else check_positive_int("step", step)
    if isinstance(refit, bool):
        refit_every = 1 if refit else 0
    else:
        refit_every = check_positive_int("refit", refit)
    frame, kind = to_polars(df)
    # parsed times, so forecasts (datetimes) join the actuals even for string dates
    frame = as_long_frame(frame, model.id_col, model.time_col)
    frame = frame.sort(model.id_col, model.time_col).with_columns(
        pl.int_range(pl.len()).over(model.id_col).alias("__pos"),
        pl.len().over(model.id_col).alias("__len"))
    results = []
    for k in range(n_windows):
        offset = model.horizon + (n_windows - 1 - k) * step  # steps after the cutoff
        history = frame.filter(pl.col("__pos") < pl.col("__len") - offset)
        actual = frame.filter((pl.col("__pos") >= pl.col("__len") - offset)
                              & (pl.col("__pos") < pl.col("__len") - offset + model.horizon))
        history, actual = history.drop("__pos", "__len"), actual.drop("__pos", "__len")
        if (refit_every and k % refit_every == 0) or not hasattr(model, "network_"):
            model.fit(history, static_df=static_df)
        future = actual if (model.future_covariates or model.calendar) else None
        forecast, _ = to_polars(model.predict(df=history, future_df=future,
                                              static_df=static_df))
        cutoffs = history.group_by(model.id_col).agg(pl.col(model.time_col).max()
                                                     .alias("cutoff"))
        forecast = forecast.with_columns(pl.col(model.time_col).cast(
            actual[model.time_col].dtype))
        joined = forecast.join(cutoffs, on=model.id_col).join(
            actual.select(model.id_col, model.time_col, model.target_col),
            on=[model.id_col, model.time_col], how="left")
        results.append(joined)
    out = pl.concat(results).select(model.id_col, model.time_col, "cutoff", model.target_col,
                                    pl.exclude(model.id_col, model.time_col, "cutoff",
                                               model.target_col))
    return from_polars(out, kind)


def score(model, df, metric: str = "mae", static_df=None) -> float:
    """``metric`` of the fitted model's forecasts for the last ``horizon`` steps of each
    series of ``df``, made from the history before them (lower is better)."""
    forecasts = backtest(model, df, n_windows=1, refit=False, static_df=static_df)
    return evaluate(forecasts, metrics=(metric,), id_col=model.id_col,
                    target_col=model.target_col)[metric]


def conformal_errors(model, df, n_windows: int = 5, step: int | None = None,
                     static_df=None) -> np.ndarray:
    """(windows x series, horizon) absolute backtest errors of the fitted model, by
    horizon step (NaN where a window had no actual)."""
    forecasts = backtest(model, df, n_windows=n_windows, step=step, refit=False,
                         static_df=static_df)
    frame, _ = to_polars(forecasts)
    frame = frame.with_columns(
        pl.int_range(pl.len()).over(model.id_col, "cutoff").alias("__step"),
        (pl.col(model.target_col) - pl.col(PRED_COL)).abs().alias("__err"))
    errors = np.full((frame.height // model.horizon, model.horizon), np.nan)
    for h in range(model.horizon):
        err = frame.filter(pl.col("__step") == h)["__err"].to_numpy()
        errors[: len(err), h] = err
    return errors


def conformal_halfwidth(errors: np.ndarray, level: float, horizon: int) -> np.ndarray:
    """(horizon,) half-widths: the finite-sample-corrected ``level`` (percent) quantile of
    each step's errors; steps beyond the calibrated horizon reuse the last one."""
    widths = []
    for h in range(errors.shape[1]):
        e = np.sort(errors[:, h][~np.isnan(errors[:, h])])
        rank = min(int(np.ceil((len(e) + 1) * level / 100.0)), len(e)) - 1
        widths.append(e[max(rank, 0)])
    widths = np.array(widths)
    return np.concatenate([widths, np.full(max(horizon - len(widths), 0), widths[-1])])[
        :horizon]
