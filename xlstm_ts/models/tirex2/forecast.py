"""Forecasting with a TiRex-2 network: batching series of any lengths, the trend
differencing and band calibration around the network, test-time sign flipping, and
the rollout past the network's horizon.

A batch is a list of :class:`SeriesInput`, each a series with one or more target
variates and optional past-only and future-known covariates; the result is one
(V_t, Q, H) tensor of quantiles per series.

Around the network (NX-AI's post-processing, constants in :class:`BandConfig`):

- a target variate whose history is a strong straight-line trend (OLS on the
  z-scored history: |slope| x length >= 1.5 and R^2 >= 0.87) is forecast in first
  differences and integrated back: the median path is the cumulated median
  difference, the band grows as the root of the cumulated squared offsets;
- the band of every other target variate is scaled by
  ``sqrt(0.90) * h ** (0.52 - 0.5)`` around its median at step h = 1..H.

Past the network's ``future_len`` (320 for the released models) the forecast rolls
out: the median of each block is appended to the history as if observed and the
next block is forecast from there (its quantiles are conditional on that median
path, so bands past the first block are narrower than a true joint forecast's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .network import TiRex2Network


@dataclass(frozen=True)
class SeriesInput:
    """One series: ``target`` (V_t, T); ``past_covariates`` (V_p, T) or None;
    ``future_covariates`` (V_f, >= T + H) or None, known over the horizon (extra
    trailing steps are ignored). NaN marks a missing value."""

    target: torch.Tensor
    past_covariates: torch.Tensor | None = None
    future_covariates: torch.Tensor | None = None


@dataclass(frozen=True)
class BandConfig:
    """Trend detection and band calibration around the network."""

    trend_min_r2: float = 0.87
    trend_threshold: float = 1.5
    diff_band_exponent: float = 0.51
    diff_band_scale: float = 1.68
    raw_band_exponent: float = 0.52
    raw_band_scale: float = 0.90


BAND = BandConfig()


def trending(target: torch.Tensor, band: BandConfig = BAND) -> torch.Tensor:
    """(V,) whether each row of ``target`` (V, T) is forecast in differences: an OLS
    line through its z-scored observed values (at least 4) with |slope| x T at or
    above ``trend_threshold`` and R^2 at or above ``trend_min_r2``."""
    y = target.double()
    observed = ~y.isnan()
    count = observed.sum(-1)
    t = torch.arange(y.shape[-1], dtype=torch.float64).expand_as(y)
    w = observed.double()
    y0 = torch.nan_to_num(y)
    mean = (y0 * w).sum(-1) / count.clamp_min(1)
    std = torch.sqrt(((y0 - mean[:, None]) ** 2 * w).sum(-1) / (count - 1).clamp_min(1))
    z = (y0 - mean[:, None]) / torch.where(std > 0, std, 1.0)[:, None] * w
    t_mean = (t * w).sum(-1) / count.clamp_min(1)
    dt = (t - t_mean[:, None]) * w
    sxx = (dt ** 2).sum(-1)
    slope = (dt * z).sum(-1) / torch.where(sxx > 0, sxx, 1.0)
    z_mean = z.sum(-1) / count.clamp_min(1)
    ss_tot = (((z - z_mean[:, None]) * w) ** 2).sum(-1)
    ss_res = (((z - (slope[:, None] * dt + z_mean[:, None])) * w) ** 2).sum(-1)
    r2 = torch.where(ss_tot > 1e-12, 1.0 - ss_res / ss_tot.clamp_min(1e-300), 0.0)
    score = slope.abs() * y.shape[-1]
    valid = (count >= 4) & (std >= 1e-12)
    return valid & (score >= band.trend_threshold) & (r2 >= band.trend_min_r2)


def _difference(x: torch.Tensor) -> torch.Tensor:
    return torch.cat([torch.zeros_like(x[..., :1]), x[..., 1:] - x[..., :-1]], dim=-1)


def _last_observed(x: torch.Tensor) -> torch.Tensor:
    """(V,) the last non-NaN value of each row of x (V, T); 0 for an empty row."""
    last = (~x.isnan()).long().cumsum(-1).argmax(-1, keepdim=True)
    return torch.nan_to_num(x.gather(-1, last).squeeze(-1), nan=0.0)


def model_rows(x: torch.Tensor, net: TiRex2Network, horizon: int,
               pad_context: bool = True) -> torch.Tensor:
    """Rows (R, T + horizon) (history, then the horizon: NaN for targets and past-only
    covariates) at the network's length: NaN on the right up to ``future_len`` steps
    after the history, NaN on the left up to ``context_len`` steps of it
    (``pad_context``), the oldest steps cut beyond it; as the reference."""
    cfg = net.config
    x = nn.functional.pad(x, (0, cfg.future_len - horizon), value=float("nan"))
    full = cfg.context_len + cfg.future_len
    if x.shape[-1] < full and pad_context:
        return nn.functional.pad(x, (full - x.shape[-1], 0), value=float("nan"))
    return x[..., -full:]


def horizon_quantiles(net: TiRex2Network, x: torch.Tensor, group: torch.Tensor,
                      target: torch.Tensor, horizon: int) -> torch.Tensor:
    """Quantiles (R_target, Q, horizon) of the target rows of ``x`` (R, T) from
    :func:`model_rows`; ``group`` (R,) series index, ``target`` (R,) bool. Covariate
    rows with values over the horizon are known covariates (they also run backward)."""
    cfg, P = net.config, net.config.patch_size
    known = (~x[:, -cfg.future_len:].isnan()).any(-1) & ~target
    future = cfg.future_len
    if not bool(known.any()):
        # Nothing runs backward in time: every output depends only on its past, so the
        # NaN padding past the patches the horizon needs can be left out (same numbers).
        future = math.ceil(horizon / P) * P
        x = x[:, :x.shape[-1] - (cfg.future_len - future)]
    # token l forecasts patch l + 1: the horizon is read from the last context token on
    out = net(x, group, target, known, outputs=future // P + 1)
    return out[target][..., :-P][..., :horizon]


@dataclass
class Batch:
    x: torch.Tensor  # (R, T) rows of all series, at the network's length
    group: torch.Tensor  # (R,) series index
    target: torch.Tensor  # (R,) bool
    diffed: list  # per series: (V_t,) bool, rows forecast in differences
    last: list  # per series: (V_t,) last observed level


def pack(net: TiRex2Network, series: list[SeriesInput], horizon: int, tta_diff: bool,
          pad_context: bool) -> Batch:
    """Rows of all series, left-padded to the longest history, right-padded over the
    horizon, at the network's length (:func:`model_rows`); as the reference."""
    longest = max(s.target.shape[-1] for s in series)
    rows, group, target, diffed, last = [], [], [], [], []
    for k, s in enumerate(series):
        t = s.target
        T = t.shape[-1]
        diff = trending(t) if tta_diff else torch.zeros(t.shape[0], dtype=torch.bool)
        diffed.append(diff)
        last.append(_last_observed(t))
        t = torch.where(diff[:, None], _difference(t), t) if bool(diff.any()) else t
        left = longest - T
        parts = [nn.functional.pad(t, (left, horizon), value=float("nan"))]
        if s.past_covariates is not None:
            parts.append(nn.functional.pad(s.past_covariates, (left, horizon),
                                           value=float("nan")))
        if s.future_covariates is not None:
            parts.append(nn.functional.pad(s.future_covariates[..., :T + horizon], (left, 0),
                                           value=float("nan")))
        block = torch.cat(parts)
        rows.append(block)
        group += [k] * len(block)
        target += [True] * t.shape[0] + [False] * (len(block) - t.shape[0])
    x = model_rows(torch.cat(rows), net, horizon, pad_context)
    return Batch(x, torch.tensor(group), torch.tensor(target), diffed, last)


@torch.no_grad()
def _one_pass(net: TiRex2Network, series: list[SeriesInput], horizon: int, tta_diff: bool,
              pad_context: bool, band: BandConfig) -> list[torch.Tensor]:
    """Quantiles (V_t, Q, horizon) per series, horizon <= future_len."""
    batch = pack(net, series, horizon, tta_diff, pad_context)
    quantiles = horizon_quantiles(net, batch.x, batch.group, batch.target, horizon)
    return calibrate(quantiles, batch.diffed, batch.last, net.config.median_index, band)


def calibrate(quantiles: torch.Tensor, diffed: list, last: list, median: int,
              band: BandConfig = BAND) -> list[torch.Tensor]:
    """The network's quantiles (R_target, Q, H) of the target rows of a batch, series
    after series, to forecasts (V_t, Q, H) per series: bands scaled with the step, rows
    forecast in differences (``diffed``, (V_t,) bool per series) integrated from
    ``last`` ((V_t,) per series)."""
    horizon = quantiles.shape[-1]
    steps = torch.arange(1, horizon + 1, dtype=quantiles.dtype)
    results, first = [], 0
    for diff, level in zip(diffed, last, strict=True):
        q = quantiles[first:first + len(diff)]
        first += len(diff)
        mid = q[:, median:median + 1]
        offset = q - mid
        raw = mid + band.raw_band_scale ** 0.5 * steps ** (band.raw_band_exponent - 0.5) * offset
        if bool(diff.any()):
            sign = offset.sum(-1, keepdim=True).sign()
            spread = torch.sqrt(torch.cumsum(offset * offset, -1))
            widening = steps ** (band.diff_band_exponent - 0.5)
            path = torch.cumsum(mid, -1) + band.diff_band_scale ** 0.5 * sign * spread * widening
            integrated = path + level.to(q.dtype)[:, None, None]
            raw = torch.where(diff[:, None, None], integrated, raw)
        results.append(raw)
    return results


def _complement(quantiles: torch.Tensor, tol: float = 1e-6) -> torch.Tensor:
    """Index of 1 - q for every quantile q (sign flipping needs a symmetric set)."""
    distance = (quantiles[None, :] - (1 - quantiles)[:, None]).abs()
    index = distance.argmin(-1)
    if bool((distance.gather(1, index[:, None]) > tol).any()):
        raise ValueError(f"tta_sign_flip needs quantiles symmetric around 0.5; got "
                         f"{quantiles.tolist()}.")
    return index


def flipped(s: SeriesInput) -> SeriesInput:
    """The series negated (target and covariates): the input of sign-flip averaging."""
    def neg(x):
        return None if x is None else -x

    return SeriesInput(-s.target, neg(s.past_covariates), neg(s.future_covariates))


def _block(net, series, horizon, tta_diff, tta_sign_flip, pad_context, band):
    forecasts = _one_pass(net, series, horizon, tta_diff, pad_context, band)
    if not tta_sign_flip:
        return forecasts
    negated = _one_pass(net, [flipped(s) for s in series], horizon, tta_diff, pad_context,
                        band)
    return unflip(forecasts, negated, net.quantiles)


def unflip(forecasts: list, flipped: list, quantiles: torch.Tensor) -> list[torch.Tensor]:
    """Sign-flip averaging: each forecast with the negated forecast of the negated series
    (its quantile q read at 1 - q)."""
    complement = _complement(quantiles)
    return [(a - b[:, complement]) / 2 for a, b in zip(forecasts, flipped, strict=True)]


@torch.no_grad()
def forecast(net: TiRex2Network, series: list[SeriesInput], horizon: int, *,
             tta_diff: bool | None = None, tta_sign_flip: bool | None = None,
             pad_context: bool = True, batch_size: int = 256,
             band: BandConfig = BAND) -> list[torch.Tensor]:
    """Quantile forecasts (V_t, Q, horizon), one per series, in float32 data units.

    ``tta_diff`` / ``tta_sign_flip``: None takes the checkpoint's setting. Horizons
    past ``future_len`` roll out (module docstring). ``batch_size`` series per pass.
    """
    cfg = net.config
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1. Got {horizon}.")
    tta_diff = cfg.tta_diff if tta_diff is None else tta_diff
    tta_sign_flip = cfg.tta_sign_flip if tta_sign_flip is None else tta_sign_flip
    series = [SeriesInput(*(None if t is None else t.float().cpu()
                            for t in (s.target, s.past_covariates, s.future_covariates)))
              for s in series]
    out = []
    for start in range(0, len(series), batch_size):
        chunk = series[start:start + batch_size]
        pieces, done = None, 0
        while done < horizon:
            step = min(cfg.future_len, horizon - done)
            block = _block(net, chunk, step, tta_diff, tta_sign_flip, pad_context, band)
            pieces = block if pieces is None else [torch.cat([a, b], -1) for a, b in
                                                   zip(pieces, block, strict=True)]
            done += step
            if done < horizon:  # roll out: the median joins the history
                chunk = [_extend(s, b[:, cfg.median_index]) for s, b in
                         zip(chunk, block, strict=True)]
        out.extend(pieces)
    return out


def _extend(s: SeriesInput, median: torch.Tensor) -> SeriesInput:
    """The series with ``median`` (V_t, h) appended as observed values; past-only
    covariates unknown (NaN) over those steps, future-known ones unchanged."""
    past = s.past_covariates
    if past is not None:
        past = nn.functional.pad(past, (0, median.shape[-1]), value=float("nan"))
    return SeriesInput(torch.cat([s.target, median], -1), past, s.future_covariates)
