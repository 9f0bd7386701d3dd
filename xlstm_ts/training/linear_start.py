"""The linear path's starting point, in closed form: ridge regression from each
window's normalised lookback to its normalised horizon, on the training windows.

A network with ``linear_path`` forecasts ``linear(window) + correction``; starting
the linear map at its least-squares optimum (instead of at zero, where gradient
descent would need many epochs to reach it) makes training start from the linear
forecast the issue asks to beat, so the xLSTM only has to learn what it lacks.

The ridge shrinks either towards zero (the window mean, in RevIN units) or towards
a naive forecast that the linear map can hold exactly: the last value repeated, the
last value with the window's drift, or the last cycle repeated for each seasonal
period that fits in the lookback. The
target and the penalty (including "the naive forecast itself") are chosen on the
validation windows when there are any (the mean of the few best maps), so on short
or noisy data the start falls back to (seasonal) naive instead of an overfitted
regression. Once chosen, the same candidates can be solved again with the validation
windows added (:func:`refit_map`): validation picked the shrinkage, and the newest
windows are the closest to the forecast that follows.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ..data import SeriesData, WindowDataset

log = logging.getLogger("xlstm_ts.training")

MAX_WINDOWS = 200_000  # a seeded sample of the training windows beyond this
PENALTIES = (1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # times the number of windows
BATCH = 8192
# The start averages the maps of up to TOP_K best candidates on validation when they
# are near-ties (within TIE of the best error): near-tied candidates swap places on
# later data and their mean is steadier; a clearly best one is taken alone. Evidence:
# docs/decisions.md ("Averaged start").
TOP_K = 3
TIE = 0.01
FALLBACK = "zero, penalty 0.001"  # the plain ridge: the start without validation


def _normalised(net, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lookback (B, L) and target (B, H) in the network's normalised units, the target
    mask (B, H) and each window's variance (B,) in data units."""
    x = batch["history"].unsqueeze(-1)
    stats = net.revin.statistics(x, batch["history_mask"])
    window = net.revin.apply(x, stats, batch["history_mask"])[..., 0]
    variance = stats[1][:, 0, 0].double() ** 2
    return window, target64(net, batch["target"], stats), batch["target_mask"], variance


def target64(net, target: torch.Tensor, stats) -> torch.Tensor:
    """Targets (B, H) in the network's normalised units, in float64.

    An all-zero window (a raw-unit series at exactly 0, e.g. a switched-off channel)
    has the smallest positive std, and its normalised target overflows float32; its
    window weight (that std squared, :func:`window_weights`) is as small, and in
    float64 their product is the error in the series' own units, as for any window."""
    return net.normalize_target(target.double(), tuple(s.double() for s in stats))


def series_variance(data: SeriesData, train_end: np.ndarray) -> torch.Tensor:
    """(n_series,) each series' variance over its observed training steps (local steps
    before ``train_end``, an int or (n,)); 1 where it is 0 or undefined. The scale that makes the
    window weights of different series comparable, as a per-series standard scaler."""
    lengths = data.lengths
    series = np.repeat(np.arange(data.n_series), lengths)
    local = np.arange(len(series)) - np.repeat(data.indptr[:-1], lengths)
    end = np.broadcast_to(np.asarray(train_end), (data.n_series,))
    keep = (local < end[series]) & data.observed.numpy()
    y = data.target.double().numpy()[keep]
    count = np.bincount(series[keep], minlength=data.n_series)
    total = np.bincount(series[keep], weights=y, minlength=data.n_series)
    mean = total / np.maximum(count, 1)
    var = np.bincount(series[keep], weights=(y - mean[series[keep]]) ** 2,
                      minlength=data.n_series) / np.maximum(count, 1)
    return torch.from_numpy(np.where((count > 1) & (var > 0), var, 1.0))


def window_weights(variance: torch.Tensor, series: torch.Tensor,
                   per_series: torch.Tensor) -> torch.Tensor:
    """(B,) each window's variance relative to its series' variance.

    Errors in window-normalised units, weighted so, are errors in each series'
    standardised units (what a per-series standard scaler and MSE would measure): a
    calm window no longer counts as much as a volatile one. Evidence, and the other
    weightings tried: ``docs/decisions.md`` ("Window weights")."""
    return variance / per_series[series]


def _moments(net, dataset: WindowDataset, rows: np.ndarray, per_series: torch.Tensor):
    """Weighted gram (L+1, L+1) and cross (L+1, H) sums over ``rows`` in float64 (with
    a bias column), and the sum of weights."""
    L = dataset.lookback
    gram = torch.zeros(L + 1, L + 1, dtype=torch.float64)
    cross = torch.zeros(L + 1, dataset.horizon, dtype=torch.float64)
    weight_sum = 0.0
    for start in range(0, len(rows), BATCH):
        batch = dataset[rows[start:start + BATCH]]
        window, target, mask, variance = _normalised(net, batch)
        w = window_weights(variance, batch["series"], per_series)[:, None]
        X = torch.cat([window, torch.ones(len(window), 1)], dim=1).double()
        Y = (target * mask).double()  # unobserved targets count as the window mean
        gram += (X * w).T @ X
        cross += (X * w).T @ Y
        weight_sum += float(w.sum())
    return gram, cross, weight_sum


def naive_maps(lookback: int, horizon: int, seasons: tuple[int, ...] = ()) -> dict:
    """(L+1, H) linear maps (bias row last, zero) that forecast naively from a window
    of ``lookback`` steps: ``"naive"`` repeats the last value, ``"drift"`` continues
    the line through the window's mean (at its centre) and its last value,
    ``"seasonal{s}"`` repeats the last ``s`` values, for each period ``s`` of
    ``seasons`` with 1 < s <= lookback."""
    maps = {"naive": _repeat_last(lookback, horizon, 1)}
    if lookback > 1:
        maps["drift"] = _drift(lookback, horizon)
    for s in sorted(set(seasons)):
        if 1 < s <= lookback:
            maps[f"seasonal{s}"] = _repeat_last(lookback, horizon, s)
    return maps


def _drift(lookback: int, horizon: int) -> torch.Tensor:
    """The (L+1, H) map forecasting ``last + h * slope`` at step h = 1..H, with
    ``slope = (last - mean) / ((L - 1) / 2)``: exact on a straight line.

    The slope comes from the window's mean rather than its first value because left
    padding sits at the mean in RevIN units (0): a padded window of a short series
    gets a damped slope, never a jump to the padding. Yearly data is where this
    matters (``docs/decisions.md``, "Drift candidate")."""
    W = torch.zeros(lookback + 1, horizon, dtype=torch.float64)
    slope = torch.arange(1, horizon + 1, dtype=torch.float64) * 2.0 / (lookback - 1)
    W[:lookback] = -slope / lookback  # minus h * slope's mean part, spread over the window
    W[lookback - 1] += 1.0 + slope
    return W


def _repeat_last(lookback: int, horizon: int, period: int) -> torch.Tensor:
    """The (L+1, H) map whose step h is the window's value ``period - h % period``
    steps before its end."""
    W = torch.zeros(lookback + 1, horizon, dtype=torch.float64)
    steps = np.arange(horizon)
    W[lookback - period + steps % period, steps] = 1.0
    return W


def candidates(gram: torch.Tensor, cross: torch.Tensor, weight_sum: float,
               naive: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """(L+1, H) ridge maps by name: shrunk towards zero (``"zero, penalty p"``) and
    towards each naive map (``"naive, penalty p"``, the map itself as ``"naive"``),
    for every penalty of :data:`PENALTIES` (times the windows' weight sum)."""
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    eye[-1, -1] = 0.0  # the bias is not penalised
    solutions = {f"zero, penalty {p:g}": torch.linalg.solve(gram + p * weight_sum * eye, cross)
                 for p in PENALTIES}
    for name, target in naive.items():
        solutions[name] = target
        for p in PENALTIES:
            solutions[f"{name}, penalty {p:g}"] = torch.linalg.solve(
                gram + p * weight_sum * eye, cross + p * weight_sum * eye @ target)
    return solutions


@torch.no_grad()
def validation_errors(net, val: WindowDataset, per_series: torch.Tensor,
                      solutions: dict[str, torch.Tensor], seed: int = 0) -> dict[str, float]:
    """Weighted squared error of each map on (a seeded sample of) the windows of
    ``val``, in each series' standardised units (see :func:`window_weights`)."""
    rows = np.arange(len(val))
    if len(rows) > MAX_WINDOWS // 4:
        rows = np.sort(np.random.default_rng(seed).choice(rows, MAX_WINDOWS // 4,
                                                          replace=False))
    errors = dict.fromkeys(solutions, 0.0)
    for start in range(0, len(rows), BATCH):
        batch = val[rows[start:start + BATCH]]
        window, target, mask, variance = _normalised(net, batch)
        w = window_weights(variance, batch["series"], per_series)[:, None]
        X = torch.cat([window, torch.ones(len(window), 1)], dim=1).double()
        for name, W in solutions.items():
            errors[name] += float((((X @ W) - target.double()) ** 2 * mask * w).sum())
    return errors


def _sample(n: int, limit: int, seed: int) -> np.ndarray:
    """All of ``range(n)``, or a seeded sorted sample of ``limit`` of them."""
    rows = np.arange(n)
    if n > limit:
        rows = np.sort(np.random.default_rng(seed).choice(rows, limit, replace=False))
    return rows


@torch.no_grad()
def training_moments(net, train: WindowDataset, per_series: torch.Tensor,
                     seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, float]:
    """The weighted moments (gram, cross, weight sum; see :func:`_moments`) of the
    training windows, a seeded sample of :data:`MAX_WINDOWS` of them where there are
    more: what :func:`ridge_start` and :func:`refit_map` solve from."""
    return _moments(net, train, _sample(len(train), MAX_WINDOWS, seed), per_series)


@torch.no_grad()
def ridge_start(net, train: WindowDataset, val: WindowDataset | None,
                per_series: torch.Tensor, seed: int = 0,
                seasons: tuple[int, ...] = (), moments=None) -> str:
    """Set ``net.linear`` to a ridge solution on ``train``, windows weighted by
    :func:`window_weights` with ``per_series`` (from :func:`series_variance`);
    ``moments``: :func:`training_moments` of ``train`` where already computed.

    With validation windows, the start is the mean of the :data:`TOP_K` maps of
    :func:`candidates` (shrinkage target zero or one of :func:`naive_maps`, and
    penalty) with the lowest :func:`validation_errors`, of those within :data:`TIE`
    (relative) of the best; without, the ridge shrunk towards zero, penalty 1e-3.
    Returns the choice, best first, e.g.
    ``"naive, penalty 0.1 + drift, penalty 0.01 + naive, penalty 0.01"``."""
    gram, cross, weight_sum = moments or training_moments(net, train, per_series, seed)
    if val is not None and len(val):
        solutions = candidates(gram, cross, weight_sum,
                               naive_maps(train.lookback, train.horizon, seasons))
        errors = validation_errors(net, val, per_series, solutions, seed)
        chosen = best_candidates(errors)
    else:
        solutions, chosen = candidates(gram, cross, weight_sum, {}), [FALLBACK]
    chosen = [name for name in chosen if torch.isfinite(solutions[name]).all()]
    if not chosen:  # nothing finite on validation (or no validation and no finite ridge)
        chosen = [FALLBACK] if torch.isfinite(solutions[FALLBACK]).all() else ["naive"]
        solutions.setdefault("naive", naive_maps(train.lookback, train.horizon)["naive"])
        log.warning("linear start: no candidate map had a finite validation error; "
                    "falling back to %r", chosen[0])
    _set_linear(net, torch.stack([solutions[name] for name in chosen]).mean(0))
    return " + ".join(chosen)


def best_candidates(errors: dict[str, float]) -> list[str]:
    """The names of the :data:`TOP_K` lowest finite ``errors`` within :data:`TIE`
    (relative) of the best, best first; empty when no error is finite. A non-finite
    error (NaN sorts anywhere) is never chosen."""
    finite = {name: e for name, e in errors.items() if np.isfinite(e)}
    ranked = sorted(finite, key=finite.get)
    return [name for name in ranked[:TOP_K] if finite[name] <= (1 + TIE) * finite[ranked[0]]]


@torch.no_grad()
def refit_map(net, moments: tuple, val: WindowDataset, per_series: torch.Tensor,
              choice: str, seed: int = 0, seasons: tuple[int, ...] = ()) -> torch.Tensor:
    """The (L+1, H) map of ``choice`` (as returned by :func:`ridge_start`), the same
    candidates solved again on the training windows (their :func:`training_moments`)
    and the windows of ``val`` together.

    Validation chose the shrinkage target and penalty; once chosen, the most recent
    windows are data like any other, and the newest ones are the closest to the
    forecast that follows."""
    more = _moments(net, val, _sample(len(val), MAX_WINDOWS, seed), per_series)
    gram, cross, weight_sum = (a + b for a, b in zip(moments, more, strict=True))
    solutions = candidates(gram, cross, weight_sum,
                           naive_maps(val.lookback, val.horizon, seasons))
    return torch.stack([solutions[name] for name in choice.split(" + ")]).mean(0)


def linear_map(net) -> torch.Tensor:
    """``net.linear`` as an (L+1, H) float64 map (bias row last)."""
    return torch.cat([net.linear.weight.T, net.linear.bias[None]]).double()


def _set_linear(net, W: torch.Tensor) -> None:
    """Set ``net.linear`` to the (L+1, H) map ``W`` (bias row last)."""
    net.linear.weight.copy_(W[:-1].T.to(net.linear.weight.dtype))
    net.linear.bias.copy_(W[-1].to(net.linear.bias.dtype))


@torch.no_grad()
def shift_linear(net, delta: torch.Tensor) -> None:
    """Add the (L+1, H) map ``delta`` to ``net.linear``."""
    _set_linear(net, linear_map(net) + delta)
