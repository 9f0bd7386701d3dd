"""Forecasting a panel with a TiRex-2 network (``network="tirex2"``): the estimator's
frames as the network's series, its quantiles at the levels asked for, and the
stream that ``update`` carries (:mod:`xlstm_ts.models.tirex2.stream`).

Shapes: n series, H horizon, F future-known covariates, P past-only ones, Q levels.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .calibration import last_spread
from .data import (
    SeriesData,
    append_observations,
    continue_series,
    every_series_in_order,
)
from .models.tirex2 import SeriesInput, TiRex2Network, forecast
from .models.tirex2.stream import TiRex2Stream

log = logging.getLogger("xlstm_ts")

BATCH_SERIES = 256  # series per forward pass: activation memory stays bounded


def series_inputs(data: SeriesData, context: int, ahead: torch.Tensor | None
                  ) -> list[SeriesInput]:
    """Each series' last ``context`` steps (NaN where unobserved) with its past-only
    covariates and its future-known ones extended by ``ahead`` (n, H, F; None where
    there are none)."""
    out = []
    for k in range(data.n_series):
        lo, hi = int(data.indptr[k]), int(data.indptr[k + 1])
        lo = max(lo, hi - context)
        target = data.target[lo:hi].float().masked_fill(~data.observed[lo:hi], float("nan"))
        past = data.past[lo:hi].T.float() if data.past.shape[1] else None
        future = None
        if data.future.shape[1]:
            future = torch.cat([data.future[lo:hi], ahead[k].to(data.future.dtype)]).T.float()
        out.append(SeriesInput(target[None], past, future))
    return out


def interpolate(values: torch.Tensor, levels: torch.Tensor, wanted) -> torch.Tensor:
    """Quantiles (..., len(wanted)) at the levels ``wanted``, linear between the
    network's ``levels`` (..., Q); a level outside their range is a ValueError."""
    grid = np.round(levels.double().numpy(), 6)  # float32 levels: 0.1 is 0.100000001
    columns = []
    for q in wanted:
        if not grid[0] - 1e-9 <= q <= grid[-1] + 1e-9:
            raise ValueError(f"quantile level {q:g} is outside the range the pretrained "
                             f"network forecasts ({grid[0]:g} to {grid[-1]:g}); ask for "
                             f"levels in that range, or calibrate wider bands with "
                             f"conformalize().")
        j = int(np.clip(np.searchsorted(grid, q - 1e-9) - 1, 0, len(grid) - 2))
        w = float(np.clip((q - grid[j]) / (grid[j + 1] - grid[j]), 0.0, 1.0))
        columns.append(values[..., j] * (1 - w) + values[..., j + 1] * w)
    return torch.stack(columns, dim=-1)


@torch.inference_mode()
def forecast_panel(net: TiRex2Network, data: SeriesData, horizon: int, ahead: torch.Tensor,
                   quantiles: tuple[float, ...], stream: dict | None = None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Median (n, H) and the quantiles (n, H, Q) at ``quantiles`` of every series: from
    the carried ``stream`` (:func:`absorb`) where given, else from ``data``."""
    if stream is not None:
        raw = torch.stack(TiRex2Stream.from_state(stream).forecast(net, horizon))
    else:
        inputs = series_inputs(data, net.config.context_len, ahead)
        raw = torch.cat([torch.stack(forecast(net, inputs[s:s + BATCH_SERIES], horizon))
                         for s in range(0, len(inputs), BATCH_SERIES)])  # (n, 1, Qm, H)
    values = raw[:, 0].transpose(1, 2)  # (n, H, Qm)
    median = interpolate(values, net.quantiles, (0.5,))[..., 0]
    return median, interpolate(values, net.quantiles, quantiles)


def absorb(net: TiRex2Network, fitted: SeriesData, new: SeriesData, stream: dict | None, *,
           skip_seen: bool = False) -> tuple[SeriesData, dict | None]:
    """``fitted`` with the rows of ``new`` appended (each series' last ``context_len``
    kept) and the ``stream`` (None: anchored on ``fitted`` first) advanced over them.

    The stream advances where it can: every fitted series, in order, gets the same
    number of new steps and no covariate is known over the horizon. Otherwise it is
    dropped (None) and forecasts re-encode each series' last ``context_len`` steps.
    Nothing is replaced before everything is computed."""
    new, codes, skipped = continue_series(fitted, new, skip_seen=skip_seen)
    if skipped:
        log.info("update: %d rows were already absorbed and are left out", skipped)
    if not new.n_series:
        return fitted, stream
    context = net.config.context_len
    steps = np.unique(new.lengths)
    if fitted.future.shape[1] or len(steps) != 1 \
            or not every_series_in_order(codes, fitted.n_series):
        log.info("update: %s; forecasts re-encode each series' last %d steps",
                 "covariates known over the horizon run backward in time"
                 if fitted.future.shape[1] else
                 "not every series got the same number of new steps", context)
        return append_observations(fitted, new, codes, keep=context), None
    with torch.inference_mode():
        carried = TiRex2Stream.from_state(stream) if stream is not None else \
            TiRex2Stream.start(net, series_inputs(fitted, context, None))
        carried = carried.update(net, series_inputs(new, int(steps[0]), None))
    return append_observations(fitted, new, codes, keep=context), carried.to_state()


@torch.inference_mode()
def held_out_errors(net: TiRex2Network, data: SeriesData, val_size: int, horizon: int
                    ) -> np.ndarray:
    """(series, min(horizon, val_size)) signed errors ``(actual - median) / spread`` of
    the forecasts made from each series' history before its last ``val_size`` steps,
    divided by the spread of that history's last ``context_len`` steps
    (:func:`xlstm_ts.calibration.spread`); NaN where a step was not observed. Series
    with fewer than two steps before the cut give no errors."""
    steps = min(horizon, val_size)
    cut = data.lengths - val_size
    keep = cut >= 2
    if not keep.any() or steps < 1:
        return np.zeros((0, max(steps, 0)))
    kept = data.subset(keep)
    history = kept.head(cut[keep])
    rows = (kept.indptr[:-1] + cut[keep])[:, None] + np.arange(steps)  # the actuals' rows
    rows_t = torch.from_numpy(rows)
    median, _ = forecast_panel(net, history, steps, kept.future[rows_t], (0.5,))
    error = (kept.target[rows_t] - median).double().numpy()
    error /= last_spread(history, net.config.context_len)[:, None]
    return np.where(kept.observed[rows_t].numpy(), error, np.nan)

