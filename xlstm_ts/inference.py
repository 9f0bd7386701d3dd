"""Forecasting with a trained network: chunked forward passes, stream states and the
recursive rollout beyond the trained horizon. Tensors in, tensors out; the
estimator turns them into frames.

Shapes: n series, H trained horizon, F future covariates, Q quantile levels.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import torch
from tqdm import tqdm  # the terminal bar: bars show only when stderr is a tty

from .data import SeriesData, every_series_in_order, last_windows

PREDICT_CHUNK = 1024  # series per network call: activation memory stays bounded


def chunks(n: int, what: str, progress: bool):
    """Start indices of ``PREDICT_CHUNK``-series chunks, with a progress bar when a person
    watches (``progress`` and an interactive stderr) and there are several."""
    starts = range(0, n, PREDICT_CHUNK)
    if len(starts) < 2:  # nothing to show: skip the bar's set-up (streamed steps)
        return starts
    show = bool(progress) and sys.stderr.isatty()
    return tqdm(starts, desc=what, unit="chunk", disable=not show, leave=False)


@torch.inference_mode()
def forecast_block(net, data: SeriesData, lookback: int, ahead: torch.Tensor,
                   quantiles: tuple[float, ...] | None, state: dict | None = None,
                   progress: bool = False):
    """Point (n, H) and quantiles (n, H, Q) or None, in data units: from the last
    ``lookback`` steps of each series of ``data``, or from a carried stream ``state``.
    ``ahead`` (n, H, F) holds the future-known covariates over the horizon."""
    source = last_windows(data, lookback, ahead) if state is None else state
    points, quants = [], []
    whole = data.n_series <= PREDICT_CHUNK  # one chunk: no slicing (streamed predicts)
    for start in chunks(data.n_series, "forecast", progress):
        part = slice(start, start + PREDICT_CHUNK)
        inputs = source if whole else {k: v[part] for k, v in source.items()}
        if state is None:
            point, quant = _denormalized(net, *net(inputs), quantiles)
        else:
            point, quant = state_forecast(net, inputs, ahead if whole else ahead[part],
                                          quantiles)
        points.append(point)
        quants.append(quant)
    return torch.cat(points), (torch.cat(quants) if quantiles is not None else None)


def state_forecast(net, state: dict, ahead: torch.Tensor,
                   quantiles: tuple[float, ...] | None):
    """Point (n, H) and quantiles (n, H, Q) or None, in data units, from the stream
    ``state`` of n series; ``ahead`` (n, H, F): future-known covariates."""
    return _denormalized(net, *net.head_from(state, ahead), quantiles)


def _denormalized(net, params, stats, quantiles: tuple[float, ...] | None):
    """The head's point (n, H) and quantiles (n, H, Q) or None from its ``params``,
    back in data units through the RevIN ``stats``."""
    point = net.denormalize(net.head.point(params), stats)
    if quantiles is None:
        return point, None
    return point, net.denormalize(net.head.quantiles(params, quantiles), stats)


def advance_and_forecast(net, state: dict, steps: dict, ahead: torch.Tensor,
                         quantiles: tuple[float, ...] | None):
    """``net.advance(state, steps)`` and the forecast from the advanced state
    (:func:`state_forecast`): one function, so that ``torch.compile`` fuses the two
    (``update(compile=True)``, :mod:`xlstm_ts.streaming`)."""
    advanced = net.advance(state, steps)
    return advanced, *state_forecast(net, advanced, ahead, quantiles)


@torch.inference_mode()
def encoded_state(net, data: SeriesData, lookback: int, progress: bool = False) -> dict:
    """The stream state of every series of ``data``, encoded from its last ``lookback``
    steps (what a forecast from ``data`` sees)."""
    windows = last_windows(data, lookback, torch.zeros(data.n_series, 0, data.future.shape[1]))
    parts = [net.encode({k: v[start:start + PREDICT_CHUNK] for k, v in windows.items()})
             for start in chunks(data.n_series, "encode", progress)]
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


@torch.inference_mode()
def advance_state(net, state: dict, steps: dict, series: np.ndarray,
                  advance: Callable | None = None) -> dict:
    """The states of rows ``series`` (n,) of ``state`` advanced over ``steps`` (n, T, ...);
    ``state`` itself is left as it was. ``advance`` stands in for ``net.advance`` (its
    compiled form, :mod:`xlstm_ts.streaming`)."""
    advance = advance or net.advance
    if len(series) <= PREDICT_CHUNK \
            and every_series_in_order(series, next(iter(state.values())).shape[0]):
        return advance(state, steps)  # every row in order: no gathering
    parts = []
    for start in range(0, len(series), PREDICT_CHUNK):
        rows = torch.from_numpy(series[start:start + PREDICT_CHUNK])
        part = slice(start, start + PREDICT_CHUNK)
        parts.append(advance({k: v[rows] for k, v in state.items()},
                             {k: v[part] for k, v in steps.items()}))
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def append_block(data: SeriesData, point: torch.Tensor, future_block: torch.Tensor
                 ) -> SeriesData:
    """The panel with ``point`` (n, H) appended to each series (recursive rollout)."""
    n, H = point.shape
    lengths = data.lengths
    indptr = np.concatenate([[0], np.cumsum(lengths + H)]).astype(np.int64)
    old_rows = np.concatenate([np.arange(a, a + m)
                               for a, m in zip(indptr[:-1], lengths, strict=True)])
    new_rows = np.concatenate([np.arange(a + m, a + m + H)
                               for a, m in zip(indptr[:-1], lengths, strict=True)])

    def grow(old: torch.Tensor, added: torch.Tensor) -> torch.Tensor:
        out = old.new_zeros((indptr[-1], *old.shape[1:]))
        out[torch.from_numpy(old_rows)] = old
        out[torch.from_numpy(new_rows)] = added.reshape(n * H, *old.shape[1:]).to(old.dtype)
        return out

    times = np.zeros(indptr[-1], dtype=data.times.dtype)
    times[old_rows] = data.times
    times[new_rows] = data.freq.after(data.last_times(), H)
    return replace(data, indptr=indptr, times=times,
                   target=grow(data.target, point),
                   observed=grow(data.observed, torch.ones(n, H, dtype=torch.bool)),
                   past=grow(data.past, torch.zeros(n, H, data.past.shape[1])),
                   future=grow(data.future, future_block))


def rollout(net, data: SeriesData, lookback: int, horizon: int, trained_horizon: int,
            ahead: torch.Tensor, quantiles: tuple[float, ...] | None,
            state: dict | None = None, progress: bool = False):
    """Point (n, horizon) and quantiles (n, horizon, Q) or None: blocks of the trained
    horizon, each fed back as history (and through the stream state, when one is
    carried) for the next."""
    points, quants = [], []
    current = data
    for start in range(0, horizon, trained_horizon):
        block = ahead[:, start:start + trained_horizon]
        if block.shape[1] < trained_horizon:  # last partial block: pad, keep the head shape
            pad = trained_horizon - block.shape[1]
            block = torch.cat([block, block[:, -1:].expand(-1, pad, -1)], dim=1)
        point, quant = forecast_block(net, current, lookback, block, quantiles, state, progress)
        points.append(point)
        quants.append(quant)
        if start + trained_horizon < horizon:
            current = append_block(current, point, block)
            if state is not None:  # a new dict: the carried state stays as it was
                n, H = point.shape
                state = advance_state(net, state, {
                    "history": point, "history_mask": torch.ones(n, H, dtype=torch.bool),
                    "past": torch.zeros(n, H, data.past.shape[1]), "future": block,
                    "static": data.static}, np.arange(n))
    point = torch.cat(points, dim=1)[:, :horizon]
    quant = torch.cat(quants, dim=1)[:, :horizon] if quants[0] is not None else None
    return point, quant


@torch.inference_mode()
def _held_out_batches(data: SeriesData, lookback: int, horizon: int, region,
                      max_windows: int, min_history: int | None = None):
    """Batches of the windows whose horizons lie in ``region`` (with at least
    ``min_history`` real history steps; default the whole lookback): at most
    ``max_windows`` of them, evenly spread."""
    from .data import WindowDataset

    windows = WindowDataset(data, lookback, horizon, region=region, min_history=min_history)
    rows = np.unique(np.linspace(0, len(windows) - 1, min(len(windows), max_windows))
                     .astype(np.int64)) if len(windows) else np.zeros(0, dtype=np.int64)
    for start in range(0, len(rows), PREDICT_CHUNK):
        yield windows[rows[start:start + PREDICT_CHUNK]]


@torch.inference_mode()
def band_coverage(net, data: SeriesData, lookback: int, horizon: int, region,
                  quantiles: tuple[float, ...], max_windows: int = 8192) -> dict[float, float]:
    """Share of the observed targets of the windows whose horizons lie in ``region``
    (at most ``max_windows`` of them, evenly spread) inside each central band the
    head's ``quantiles`` hold: {nominal level in percent: coverage}."""
    pairs = [(lo, hi) for lo in quantiles for hi in quantiles
             if lo < 0.5 < hi and abs(lo + hi - 1) < 1e-9]
    inside = {pair: 0 for pair in pairs}
    count = 0
    for batch in _held_out_batches(data, lookback, horizon, region, max_windows):
        _, quant = _denormalized(net, *net(batch), quantiles)
        mask, y = batch["target_mask"], batch["target"]
        count += int(mask.sum())
        for lo, hi in pairs:
            low, high = quant[..., quantiles.index(lo)], quant[..., quantiles.index(hi)]
            inside[(lo, hi)] += int(((y >= low) & (y <= high) & mask).sum())
    return {round(100 * (hi - lo), 6): inside[(lo, hi)] / count for lo, hi in pairs} \
        if count else {}


@torch.inference_mode()
def held_out_errors(net, data: SeriesData, lookback: int, horizon: int, region,
                    min_history: int | None = None, max_windows: int = 8192) -> np.ndarray:
    """(windows, horizon) signed errors ``(actual - point) / spread`` of the point
    forecasts of the windows whose horizons lie in ``region`` (those the validation
    loss scores: at least ``min_history`` real history steps; at most ``max_windows``,
    evenly spread), each divided by its history's spread
    (:func:`xlstm_ts.calibration.spread`); NaN where a step was not observed."""
    from .calibration import spread

    parts = []
    for batch in _held_out_batches(data, lookback, horizon, region, max_windows,
                                   min_history):
        point, _ = _denormalized(net, *net(batch), None)
        scale = spread(batch["history"].numpy(), batch["history_mask"].numpy())
        error = (batch["target"] - point).double().numpy() / scale[:, None]
        parts.append(np.where(batch["target_mask"].numpy(), error, np.nan))
    return np.concatenate(parts) if parts else np.zeros((0, horizon))


def check_finite(values: np.ndarray, data: SeriesData, horizon: int) -> None:
    """Never return a NaN or infinite forecast without saying why."""
    if np.isfinite(values).all():
        return
    bad = ~np.isfinite(values.reshape(data.n_series, horizon)).all(axis=1)
    if bad.any():
        raise FloatingPointError(
            f"The forecasts of {int(bad.sum())} series are not finite, e.g. series "
            f"{data.ids[bad][:5].tolist()}: their values are beyond float32 range (about "
            f"3.4e38) after normalisation. Rescale the target (e.g. divide by a constant).")
