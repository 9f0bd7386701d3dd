"""Forecast accuracy metrics, on arrays and on long frames.

Array functions take anything ``numpy.asarray`` understands (numpy, torch on CPU,
lists) and ignore positions where ``y_true`` is NaN. :func:`evaluate` applies them
per series of a long frame and aggregates (mean over series).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl

from ..data.frames import FrameLike, from_polars, to_polars


def _pair(y_true, y_pred):
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same shape. Got {t.shape} and {p.shape}."
        )
    keep = ~np.isnan(t)
    return t[keep], p[keep]


def mae(y_true, y_pred) -> float:
    """Mean absolute error, in the units of the data; NaN pairs are ignored."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def mse(y_true, y_pred) -> float:
    """Mean squared error, in squared units of the data; NaN pairs are ignored."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error, in the units of the data."""
    return float(np.sqrt(mse(y_true, y_pred)))


def smape(y_true, y_pred) -> float:
    """Symmetric MAPE in percent (0-200), as in the M4 competition; 0/0 counts as 0."""
    t, p = _pair(y_true, y_pred)
    denom = np.abs(t) + np.abs(p)
    ratio = np.divide(2.0 * np.abs(t - p), denom, out=np.zeros_like(denom), where=denom > 0)
    return float(100.0 * np.mean(ratio))


def mase(y_true, y_pred, y_train, season: int = 1) -> float:
    """MAE scaled by the in-sample MAE of the seasonal-naive forecast on ``y_train``."""
    train = np.asarray(y_train, dtype=np.float64)
    train = train[~np.isnan(train)]
    if len(train) <= season:
        raise ValueError(f"y_train needs more than season={season} values for MASE. "
                         f"Got {len(train)}.")
    scale = np.mean(np.abs(train[season:] - train[:-season]))
    return mae(y_true, y_pred) / scale if scale > 0 else float("nan")


def pinball_loss(y_true, q_pred, quantiles: Sequence[float]) -> float:
    """Mean pinball (quantile) loss; ``q_pred`` has a last axis over ``quantiles``."""
    t = np.asarray(y_true, dtype=np.float64)[..., None]
    q = np.asarray(q_pred, dtype=np.float64)
    levels = np.asarray(quantiles, dtype=np.float64)
    if q.shape[-1] != len(levels) or q.shape[:-1] != t.shape[:-1]:
        raise ValueError(f"q_pred must have shape y_true.shape + ({len(levels)},). "
                         f"Got {q.shape} for y_true {t.shape[:-1]}.")
    diff = t - q
    loss = np.maximum(levels * diff, (levels - 1.0) * diff)
    return float(np.nanmean(loss))


def crps_from_quantiles(y_true, q_pred, quantiles: Sequence[float]) -> float:
    """CRPS approximated by twice the pinball loss averaged over the quantile levels."""
    return 2.0 * pinball_loss(y_true, q_pred, quantiles)


def scaled_quantile_loss(y_true, q_pred, quantiles: Sequence[float]) -> float:
    """The weighted quantile loss of a whole panel (GIFT-Eval's CRPS proxy): twice the
    pinball loss summed over all series, steps and levels, divided by the number of
    levels and the sum of |y_true|. A point forecast (every level the same value)
    scores its WAPE. ``q_pred`` has a last axis over ``quantiles``; NaN actuals are
    left out."""
    t = np.asarray(y_true, dtype=np.float64)
    q = np.asarray(q_pred, dtype=np.float64)
    levels = np.asarray(quantiles, dtype=np.float64)
    if q.shape != (*t.shape, len(levels)):
        raise ValueError(f"q_pred must have shape y_true.shape + ({len(levels)},). "
                         f"Got {q.shape} for y_true {t.shape}.")
    keep = ~np.isnan(t)
    diff = t[keep][..., None] - q[keep]
    loss = np.maximum(levels * diff, (levels - 1.0) * diff).sum()
    total = np.abs(t[keep]).sum()
    return float(2.0 * loss / len(levels) / total) if total > 0 else float("nan")


def coverage(y_true, lower, upper) -> float:
    """Share of observations inside ``[lower, upper]``."""
    t, lo = _pair(y_true, lower)
    _, hi = _pair(y_true, upper)
    return float(np.mean((t >= lo) & (t <= hi)))


def interval_width(lower, upper) -> float:
    """Mean width of the intervals [lower, upper], in the units of the data."""
    lo, hi = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    return float(np.mean(hi - lo))


POINT_METRICS = {"mae": mae, "mse": mse, "rmse": rmse, "smape": smape}


def evaluate(
    df: FrameLike,
    *,
    metrics: Sequence[str] = ("mae", "rmse", "smape"),
    id_col: str = "unique_id",
    target_col: str = "y",
    pred_col: str = "y_pred",
    train_df: FrameLike | None = None,
    season: int = 1,
    quantile_cols: dict[float, str] | None = None,
    interval_cols: tuple[str, str] | None = None,
    per_series: bool = False,
):
    """Score forecasts in a long frame holding ``target_col`` and ``pred_col``.

    Metrics are computed per series, then averaged over series. ``"mase"`` needs
    ``train_df`` (the history, same columns) and ``season``; ``"pinball"`` and
    ``"crps"`` need ``quantile_cols`` ({level: column}); ``"coverage"`` and
    ``"width"`` need ``interval_cols`` (lower, upper). Returns a dict of averages, or
    with ``per_series=True`` a frame (caller's library) of one row per series.
    """
    frame, kind = to_polars(df)
    known = [*POINT_METRICS, "mase", "pinball", "crps", "coverage", "width"]
    unknown = [m for m in metrics if m not in known]
    if unknown:
        raise ValueError(f"Unknown metrics {unknown}. Choose from {known}.")
    if {"pinball", "crps"} & set(metrics) and not quantile_cols:
        raise ValueError("metrics 'pinball' and 'crps' need quantile_cols={level: column}.")
    if {"coverage", "width"} & set(metrics) and not interval_cols:
        raise ValueError("metrics 'coverage' and 'width' need interval_cols=(lower, upper).")
    needed = [id_col, target_col]
    if set(metrics) & {*POINT_METRICS, "mase"}:
        needed.append(pred_col)
    needed += list((quantile_cols or {}).values()) + list(interval_cols or ())
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"The following columns are missing from df: {missing}.")
    history = {}
    if "mase" in metrics:
        if train_df is None:
            raise ValueError("metric 'mase' needs train_df, the history of each series.")
        train, _ = to_polars(train_df, "train_df")
        history = {k[0]: g[target_col].to_numpy() for k, g in train.group_by(id_col)}
    rows = []
    for (sid,), group in frame.group_by(id_col, maintain_order=True):
        t = group[target_col].to_numpy()
        p = group[pred_col].to_numpy() if pred_col in group.columns else None
        row = {id_col: sid}
        for name in metrics:
            if name in ("pinball", "crps"):
                levels = list(quantile_cols)
                q = group.select(quantile_cols[lv] for lv in levels).to_numpy()
                fn = pinball_loss if name == "pinball" else crps_from_quantiles
                row[name] = fn(t, q, levels)
            elif name in ("coverage", "width"):
                lo, hi = (group[c].to_numpy() for c in interval_cols)
                row[name] = coverage(t, lo, hi) if name == "coverage" else interval_width(lo, hi)
            elif name == "mase":
                if sid not in history:
                    raise ValueError(f"train_df has no history for series {sid!r}.")
                row[name] = mase(t, p, history[sid], season)
            else:
                row[name] = POINT_METRICS[name](t, p)
        rows.append(row)
    table = pl.DataFrame(rows)
    if per_series:
        return from_polars(table, kind)
    return {name: float(table[name].mean()) for name in metrics}
