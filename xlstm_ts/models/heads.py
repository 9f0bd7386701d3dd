"""Output heads over the horizon: point, quantile and parametric (Normal, Student-t).

Every head maps features ``z`` (B, D) to parameters for all H horizon steps at
once (direct multi-horizon output) and offers the same four operations, all in
the network's normalised units:

- ``forward(z) -> params``: (B, H) point, (B, H, Q) quantiles, (B, H, 2|3) distribution;
- ``loss(params, target (B, H), mask (B, H) | None) -> scalar``;
- ``point(params) -> (B, H)``: the point forecast (median for probabilistic heads);
- ``quantiles(params, levels) -> (B, H, len(levels))``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F_
from torch import nn


def _masked_mean(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is None:
        return values.mean()
    mask = mask.to(values.dtype)
    while mask.ndim < values.ndim:
        mask = mask.unsqueeze(-1).expand_as(values)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


class PointHead(nn.Module):
    """Linear map to H values, trained with ``"mse"``, ``"mae"`` or ``"huber"``."""

    LOSSES = ("mse", "mae", "huber")

    def __init__(self, d_in: int, horizon: int, loss: str = "mse"):
        super().__init__()
        if loss not in self.LOSSES:
            raise ValueError(f"loss must be one of {list(self.LOSSES)} for a point head. "
                             f"Got {loss!r}.")
        self.loss_name = loss
        self.proj = nn.Linear(d_in, horizon)

    def forward(self, z: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H) forecasts from features z (B, d_in), added to ``base`` (B, H) if given."""
        out = self.proj(z)
        return out if base is None else out + base

    def loss(self, params, target, mask=None):
        """Mean point loss of params (B, H) against target (B, H) over unmasked steps."""
        if self.loss_name == "mse":
            err = (params - target) ** 2
        elif self.loss_name == "mae":
            err = (params - target).abs()
        else:
            # torch's default delta of 1: quadratic within one (normalised) unit
            err = F_.huber_loss(params, target, reduction="none")
        return _masked_mean(err, mask)

    def point(self, params):
        """The point forecast (B, H)."""
        return params

    def quantiles(self, params, levels):
        """Not available: a point head predicts no distribution."""
        raise ValueError("A point head has no quantiles; use head='quantile', 'normal' or "
                         "'studentt', or conformal intervals.")


class QuantileHead(nn.Module):
    """Quantiles at fixed ``levels`` trained with the pinball loss; monotone by
    construction (lowest quantile plus a cumulative sum of positive increments)."""

    def __init__(self, d_in: int, horizon: int, levels: Sequence[float]):
        super().__init__()
        levels = sorted(float(q) for q in levels)
        if not levels or any(not 0.0 < q < 1.0 for q in levels) or len(set(levels)) != len(levels):
            raise ValueError(f"quantiles must be distinct values in (0, 1). Got {levels}.")
        self.horizon = horizon
        self.register_buffer("levels", torch.tensor(levels), persistent=False)
        self.proj = nn.Linear(d_in, horizon * len(levels))

    def forward(self, z: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, Q) increasing quantiles, all shifted by ``base`` (B, H) if given."""
        raw = self.proj(z).view(z.shape[0], self.horizon, -1)  # (B, H, Q)
        steps = F_.softplus(raw[..., 1:])
        out = torch.cat([raw[..., :1], raw[..., :1] + steps.cumsum(-1)], dim=-1)
        return out if base is None else out + base.unsqueeze(-1)

    def loss(self, params, target, mask=None):
        """Mean pinball loss of quantiles (B, H, Q) against target (B, H)."""
        diff = target.unsqueeze(-1) - params  # (B, H, Q)
        levels = self.levels.to(params.dtype)
        pinball = torch.maximum(levels * diff, (levels - 1.0) * diff)
        return _masked_mean(pinball, mask)

    def point(self, params):
        """The median (B, H), interpolated if 0.5 is not a trained level."""
        return self.quantiles(params, [0.5])[..., 0]

    def quantiles(self, params, levels):
        """Linear interpolation between the trained levels (clamped at the ends)."""
        trained = self.levels.to(params.dtype)
        wanted = torch.as_tensor(list(levels), dtype=params.dtype, device=params.device)
        if len(trained) == 1:
            return params.expand(*params.shape[:-1], len(wanted))  # (..., 1): one level
        idx = torch.searchsorted(trained, wanted).clamp(1, len(trained) - 1)
        lo, hi = trained[idx - 1], trained[idx]
        w = ((wanted - lo) / (hi - lo)).clamp(0.0, 1.0)
        return params[..., idx - 1] * (1 - w) + params[..., idx] * w


class DistributionHead(nn.Module):
    """Normal or Student-t per horizon step, trained by negative log-likelihood."""

    FAMILIES = ("normal", "studentt")

    def __init__(self, d_in: int, horizon: int, family: str = "normal", min_scale: float = 1e-3):
        super().__init__()
        if family not in self.FAMILIES:
            raise ValueError(f"family must be one of {list(self.FAMILIES)}. Got {family!r}.")
        self.family, self.horizon, self.min_scale = family, horizon, min_scale
        self.n_params = 2 if family == "normal" else 3
        self.proj = nn.Linear(d_in, horizon * self.n_params)

    def forward(self, z: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """(B, H, n_params): loc (shifted by ``base`` (B, H) if given), scale[, df]."""
        raw = self.proj(z).view(z.shape[0], self.horizon, self.n_params)
        loc = raw[..., 0] if base is None else raw[..., 0] + base
        scale = F_.softplus(raw[..., 1]) + self.min_scale
        parts = [loc, scale]
        if self.family == "studentt":
            parts.append(2.0 + F_.softplus(raw[..., 2]))  # df > 2: finite variance
        return torch.stack(parts, dim=-1)

    def distribution(self, params) -> torch.distributions.Distribution:
        """The predictive distribution over (B, H) from params (B, H, 2 or 3)."""
        if self.family == "normal":
            return torch.distributions.Normal(params[..., 0], params[..., 1])
        return torch.distributions.StudentT(params[..., 2], params[..., 0], params[..., 1])

    def loss(self, params, target, mask=None):
        """Mean negative log-likelihood of target (B, H) over unmasked steps."""
        return _masked_mean(-self.distribution(params).log_prob(target), mask)

    def point(self, params):
        """The location (B, H)."""
        return params[..., 0]  # both families are symmetric: the median is loc

    def sample(self, params, n: int) -> torch.Tensor:
        """``n`` draws per series and step, (n, B, H), from torch's global generator."""
        return self.distribution(params).sample((n,))

    def quantiles(self, params, levels):
        """Quantiles (B, H, Q) at ``levels``: loc + scale * the standard quantile, exact
        and deterministic for both families (Student-t's from SciPy, as torch has no
        icdf for it; it was estimated from 2,000 random draws, so two predict calls
        disagreed)."""
        wanted = torch.as_tensor(list(levels), dtype=params.dtype, device=params.device)
        if self.family == "normal":
            z = torch.distributions.Normal(0.0, 1.0).icdf(wanted)  # (Q,), broadcast below
        else:
            from scipy.stats import t as student_t  # on first use: a slow import

            df = params[..., 2:].detach().double().cpu().numpy()
            z = torch.from_numpy(student_t.ppf(wanted.double().cpu().numpy(), df)).to(params)
        return params[..., :1] + params[..., 1:2] * z


def build_head(kind: str, d_in: int, horizon: int, *, loss: str = "mse",
               quantiles: Sequence[float] = (0.1, 0.5, 0.9)) -> nn.Module:
    """``kind``: ``"point"``, ``"quantile"``, ``"normal"`` or ``"studentt"``."""
    if kind == "point":
        return PointHead(d_in, horizon, loss)
    if kind == "quantile":
        return QuantileHead(d_in, horizon, quantiles)
    if kind in DistributionHead.FAMILIES:
        return DistributionHead(d_in, horizon, kind)
    raise ValueError(f"head must be one of ['point', 'quantile', 'normal', 'studentt']. "
                     f"Got {kind!r}.")
