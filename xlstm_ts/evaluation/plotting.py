"""Figures for forecasts, backtests and training curves (matplotlib).

Each function returns a :class:`matplotlib.figure.Figure` built without pyplot,
so nothing global changes (no backend switch, no open-figure registry): show it in
a notebook by leaving it as a cell's value, save it with ``fig.savefig(path)``,
log it with ``mlflow.log_figure``. Frames may be pandas or polars, with the
forecaster's column conventions (``y_pred``, ``y_pred_q{q}``,
``y_pred_lo{level}`` / ``y_pred_hi{level}``, ``cutoff``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ..data.frames import PRED_COL, to_polars


class ShownFigure(Figure):
    """A :class:`~matplotlib.figure.Figure` that a notebook shows as an image when it is
    a cell's value: figures built without pyplot have no backend that would."""

    def _repr_png_(self) -> bytes:
        from io import BytesIO

        buffer = BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()

_HISTORY, _ACTUAL, _FORECAST = "0.35", "0.1", "C0"


def _pandas(frame, name: str) -> pd.DataFrame:
    if frame is None:
        return None
    polars_frame, _ = to_polars(frame, name)
    return polars_frame.to_pandas()


def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} lacks the columns {missing}; it has {list(frame.columns)}.")


def _interval_pairs(columns: Sequence[str]) -> list[tuple[str, str]]:
    """(lower, upper) column pairs, widest first: symmetric quantile pairs
    (q0.1 with q0.9) and conformal pairs (lo80 with hi80)."""
    q_prefix, lo_prefix = f"{PRED_COL}_q", f"{PRED_COL}_lo"
    quantiles = sorted(float(c[len(q_prefix):]) for c in columns if c.startswith(q_prefix))
    pairs = [(f"{q_prefix}{lo:g}", f"{q_prefix}{hi:g}") for lo in quantiles for hi in quantiles
             if lo < 0.5 < hi and abs(lo + hi - 1) < 1e-9]
    levels = sorted((float(c[len(lo_prefix):]) for c in columns if c.startswith(lo_prefix)),
                    reverse=True)
    pairs += [(f"{PRED_COL}_lo{lv:g}", f"{PRED_COL}_hi{lv:g}") for lv in levels
              if f"{PRED_COL}_hi{lv:g}" in columns]
    return sorted(pairs, key=lambda p: p[0])  # stable; alpha stacks the nested bands


def plot_forecast(history, forecasts, actuals=None, ids: Sequence | None = None, *,
                  id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
                  max_series: int = 6, context: int | None = None,
                  figsize: tuple[float, float] | None = None) -> Figure:
    """History, actuals, point forecast and shaded intervals; one panel per series.

    Args:
        history: long frame (id, time, target) the forecasts continue.
        forecasts: output of :meth:`XLSTMForecaster.predict` (or any frame with
            ``y_pred`` and optional quantile / conformal columns).
        actuals: optional long frame with the true values over the horizon.
        ids: series to draw (default: the first ``max_series`` in ``forecasts``).
        context: history steps shown before the forecast (default: 4x the horizon).
        figsize: inches; default 10 wide, 2.4 per panel.
    """
    hist = _pandas(history, "history")
    fc = _pandas(forecasts, "forecasts")
    act = _pandas(actuals, "actuals")
    if id_col not in fc.columns:  # a single series: predict's default id
        fc = fc.assign(**{id_col: "series"})
        hist = hist.assign(**{id_col: "series"})
        act = act.assign(**{id_col: "series"}) if act is not None else None
    _require(hist, "history", (id_col, time_col, target_col))
    _require(fc, "forecasts", (id_col, time_col, PRED_COL))
    if act is not None:
        _require(act, "actuals", (id_col, time_col, target_col))
    chosen = list(ids) if ids is not None else list(dict.fromkeys(fc[id_col]))[:max_series]
    if not chosen:
        raise ValueError("forecasts holds no series to plot.")
    pairs = _interval_pairs(fc.columns)
    fig = ShownFigure(figsize=figsize or (10, 2.4 * len(chosen)), layout="constrained")
    axes = fig.subplots(len(chosen), 1, squeeze=False)[:, 0]
    for ax, sid in zip(axes, chosen, strict=True):
        f = fc[fc[id_col] == sid]
        if f.empty:
            raise ValueError(f"series {sid!r} is not in forecasts.")
        show = context or 4 * len(f)
        h = hist[hist[id_col] == sid].sort_values(time_col).tail(show)
        ax.plot(h[time_col], h[target_col], color=_HISTORY, lw=1, label="history")
        if act is not None:
            a = act[(act[id_col] == sid) & act[time_col].isin(f[time_col])]
            ax.plot(a[time_col], a[target_col], color=_ACTUAL, lw=1, ls=":", label="actual")
        for k, (lo, hi) in enumerate(pairs):
            ax.fill_between(f[time_col], f[lo], f[hi], color=_FORECAST, alpha=0.15,
                            lw=0, label=f"{lo[len(PRED_COL) + 1:]}-{hi[len(PRED_COL) + 1:]}"
                            if k < 3 else None)
        ax.plot(f[time_col], f[PRED_COL], color=_FORECAST, lw=1.5, label="forecast")
        ax.set_title(str(sid), fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    axes[0].legend(loc="upper left", fontsize=7, ncol=4, frameon=False)
    return fig


def plot_backtest(backtest, *, id_col: str = "unique_id", target_col: str = "y",
                  figsize: tuple[float, float] = (10, 3.2)) -> Figure:
    """Errors of :meth:`XLSTMForecaster.backtest` output: MAE and RMSE by horizon step
    (left) and MAE by cutoff (right)."""
    bt = _pandas(backtest, "backtest")
    _require(bt, "backtest", (id_col, "cutoff", target_col, PRED_COL))
    bt = bt.dropna(subset=[target_col])
    if bt.empty:
        raise ValueError("backtest holds no rows with actual values.")
    bt = bt.assign(step=bt.groupby([id_col, "cutoff"]).cumcount() + 1,
                   err=bt[PRED_COL] - bt[target_col])
    by_step = bt.groupby("step").err.agg(mae=lambda e: e.abs().mean(),
                                         rmse=lambda e: float(np.sqrt((e ** 2).mean())))
    by_cutoff = bt.groupby("cutoff").err.agg(lambda e: e.abs().mean())
    fig = ShownFigure(figsize=figsize, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot(by_step.index, by_step.mae, marker=".", label="MAE")
    left.plot(by_step.index, by_step.rmse, marker=".", label="RMSE")
    left.set_xlabel("horizon step")
    left.set_title("error by horizon step", fontsize=9, loc="left")
    left.legend(fontsize=8, frameon=False)
    right.bar(range(len(by_cutoff)), by_cutoff.values, color=_FORECAST)
    right.set_xticks(range(len(by_cutoff)), [str(c)[:16] for c in by_cutoff.index],
                     rotation=30, ha="right", fontsize=7)
    right.set_title("MAE by cutoff", fontsize=9, loc="left")
    return fig


def plot_training(loss_history: Mapping[str, Sequence[float]] | object,
                  figsize: tuple[float, float] = (6, 3)) -> Figure:
    """Training and validation loss per epoch, from ``model.loss_history_`` (or a fitted
    :class:`XLSTMForecaster` itself)."""
    curves = getattr(loss_history, "loss_history_", loss_history)
    if not isinstance(curves, Mapping) or not curves.get("epoch"):
        raise ValueError("plot_training needs a fitted forecaster or its loss_history_ "
                         "({'epoch': [...], 'train_loss': [...], 'val_loss': [...]}).")
    fig = ShownFigure(figsize=figsize, layout="constrained")
    ax = fig.subplots()
    for name in ("train_loss", "val_loss"):
        values = curves.get(name) or []
        if any(v is not None for v in values):
            ax.plot(curves["epoch"], [np.nan if v is None else v for v in values],
                    marker=".", label=name.replace("_", " "))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (normalised units)")
    ax.legend(fontsize=8, frameon=False)
    return fig
