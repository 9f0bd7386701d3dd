"""How much of the trained correction to keep: a blend of the trained network and its
linear start, weighed on the validation windows.

A network with the linear path forecasts ``linear(window) + proj(features)`` and
starts at the ridge map with ``proj`` at zero (:mod:`.linear_start`). For a point
head the forecast ``w * trained + (1 - w) * start`` is again such a network: its
linear map is the blend of the two maps and its head's output layer is the trained
one scaled by ``w``. So the blend weight is chosen among :data:`BLEND_WEIGHTS` on
validation and folded into one network (save, load and streaming see nothing new):
``w = 0`` keeps the start, ``w = 1`` the trained weights, values between combine two
forecasts whose errors differ, which is where combining pays. Quantile and
distribution heads are not linear in their output layer, and a learned RevIN scale
changes the linear map's input: those choose between 0 and 1.

The weight is the one with the lowest validation MSE, one for the whole horizon: a
one-standard-error rule and a weight per quarter of the horizon were tried and did not
help across datasets (``docs/decisions.md``, "Blend yardstick").
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .linear_start import target64, window_weights

BLEND_WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # share of the trained network kept
_BATCH = 1024  # windows per forward pass: larger batches ran slower on CPU


def blend_weights(net: nn.Module) -> tuple[float, ...]:
    """The weights a network can hold exactly: all of :data:`BLEND_WEIGHTS` for a point
    head on fixed RevIN units, the two ends otherwise."""
    exact = net.config.head == "point" and not net.config.revin_affine
    return BLEND_WEIGHTS if exact else (0.0, 1.0)


@torch.no_grad()
def blend_val_mse(trained: nn.Module, start: nn.Module, val, variance: torch.Tensor,
                  weights=BLEND_WEIGHTS, rows: np.ndarray | None = None) -> list[float]:
    """Validation MSE of ``w * trained + (1 - w) * start`` point forecasts for each
    ``w`` in ``weights`` over the windows ``rows`` of ``val`` (default: all), in each
    series' standardised units (window errors weighted by :func:`window_weights`, the
    linear start's yardstick); inf without windows.
    The training loss in window-normalised units can prefer a network that is worse
    in every series' own scale, hence this yardstick (``docs/decisions.md``)."""
    nets = (trained, start)
    modes = [net.training for net in nets]
    for net in nets:
        net.eval()
    blend = torch.tensor(weights, dtype=torch.float64)[:, None, None]  # (W, 1, 1)
    totals, count = torch.zeros(len(weights), dtype=torch.float64), 0
    rows = np.arange(len(val)) if rows is None else np.asarray(rows)
    for first in range(0, len(rows), _BATCH):
        batch = val[rows[first:first + _BATCH]]
        (params, stats), (start_params, _) = trained(batch), start(batch)
        target = target64(trained, batch["target"], stats)
        point = blend * trained.head.point(params).double() \
            + (1 - blend) * start.head.point(start_params).double()  # (W, B, H)
        window = window_weights(stats[1][:, 0, 0].double() ** 2, batch["series"], variance)
        mask = batch["target_mask"].double()
        totals += (((point - target) ** 2 * mask).sum(-1) * window).sum(-1)
        count += int(batch["target_mask"].sum())
    for net, mode in zip(nets, modes, strict=True):
        net.train(mode)
    return (totals / count).tolist() if count else [float("inf")] * len(weights)


def choose_blend(weights, errors) -> float:
    """The share of the trained network with the lowest validation error; among equal
    errors the smallest share (ties go to the linear start: the network must earn its
    place). ``weights`` ascending, as :func:`blend_weights` gives them."""
    errors = np.asarray(errors, dtype=np.float64)
    best = np.nanmin(errors) if np.isfinite(errors).any() else np.inf
    return float(weights[int(np.flatnonzero(errors == best)[0])]) if np.isfinite(best) \
        else float(weights[0])


def keep_covariate_effect(trained: nn.Module, start: nn.Module) -> None:
    """Give ``start`` the trained step-wise effect of the future covariates, so that
    the blend mixes the lookback's maps only: the linear start knows no covariates,
    and a blend towards it shrank a learned promotion effect (``benchmarks/units.py``,
    ``docs/decisions.md``, "Blend yardstick")."""
    if getattr(trained, "ahead", None) is not None:
        start.ahead.load_state_dict(trained.ahead.state_dict())


@torch.no_grad()
def fold_blend(trained: nn.Module, start: nn.Module, weight: float) -> None:
    """Make ``trained`` forecast ``weight * trained + (1 - weight) * start`` (in place).

    For ``0 < weight < 1`` (see :func:`blend_weights`) the start's head output layer
    must be zero, as it is before training: its forecast is its linear map alone."""
    if weight == 1.0:
        return
    if weight == 0.0:
        trained.load_state_dict(start.state_dict())
        return
    for name in ("weight", "bias"):
        mixed = getattr(trained.linear, name).lerp(getattr(start.linear, name), 1.0 - weight)
        getattr(trained.linear, name).copy_(mixed)
        getattr(trained.head.proj, name).mul_(weight)
