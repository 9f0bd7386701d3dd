"""Forecasting a panel with a TiRex-2 network (``network="tirex2"``): the estimator's
frames as the network's series, its quantiles at the levels asked for.

Shapes: n series, H horizon, F future-known covariates, P past-only ones, Q levels.
"""

from __future__ import annotations

import numpy as np
import torch

from .data import SeriesData
from .models.tirex2 import SeriesInput, TiRex2Network, forecast

BATCH_SERIES = 256  # series per forward pass: activation memory stays bounded


def series_inputs(data: SeriesData, context: int, ahead: torch.Tensor) -> list[SeriesInput]:
    """Each series' last ``context`` steps (NaN where unobserved) with its past-only
    covariates and its future-known ones extended by ``ahead`` (n, H, F)."""
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
                   quantiles: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Median (n, H) and the quantiles (n, H, Q) at ``quantiles`` of every series."""
    inputs = series_inputs(data, net.config.context_len, ahead)
    raw = torch.cat([torch.stack(forecast(net, inputs[s:s + BATCH_SERIES], horizon))
                     for s in range(0, len(inputs), BATCH_SERIES)])  # (n, 1, Qm, H)
    values = raw[:, 0].transpose(1, 2)  # (n, H, Qm)
    median = interpolate(values, net.quantiles, (0.5,))[..., 0]
    return median, interpolate(values, net.quantiles, quantiles)
