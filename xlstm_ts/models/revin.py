"""Reversible instance normalisation (RevIN, Kim et al., 2022)."""

from __future__ import annotations

import torch
from torch import nn


class RevIN(nn.Module):
    """Normalise each window by its own mean and std over time, and undo it on the output.

    ``normalize(x (B, L, C), mask (B, L) | None) -> (x_norm, stats)``: statistics over
    the observed steps only; masked steps come out as 0.
    ``denormalize(y (B, H, C), stats) -> y`` in the original units. With ``affine`` a
    learnable per-channel scale and shift sit between the two. The scale is kept
    positive (``exp`` of a parameter): the original formulation divides by a free
    weight, and when training drives it through zero the outputs explode.

    The std is floored at ``eps`` times the window's largest magnitude, not at an
    absolute ``eps``: an absolute floor squashed series measured in small units (a
    sine of amplitude 1e-9 became a flat forecast), while a relative one keeps the
    normalisation scale-free and still keeps float32 round-off in the mean of a
    constant window from being blown up. An all-zero window gets the smallest
    positive std, so nothing divides by zero.
    """

    def __init__(self, num_features: int = 1, affine: bool = True, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.log_weight = nn.Parameter(torch.zeros(num_features)) if affine else None
        self.bias = nn.Parameter(torch.zeros(num_features)) if affine else None

    @property
    def weight(self) -> torch.Tensor | None:
        return None if self.log_weight is None else self.log_weight.exp()

    def normalize(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """x (B, L, C) -> (normalised x, (mean, std)); statistics over observed steps."""
        stats = self.statistics(x, mask)
        return self.apply(x, stats, mask), stats

    def statistics(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        """(mean, std), each (B, 1, C), over the observed steps of x (B, L, C).

        Squared deviations of float32 values above about 1e19 overflow float32 although
        the std itself fits: then the moments are recomputed in float64."""
        m = torch.ones_like(x[..., :1]) if mask is None else mask.unsqueeze(-1).to(x.dtype)
        mean, var = _moments(x, m)
        std = torch.sqrt(var)
        if x.dtype != torch.float64 and not torch.isfinite(var).all():
            # the root is taken in float64: the variance of 1e30-sized values is not
            # representable in float32 although their std is
            mean, var = _moments(x.double(), m.double())
            mean, std = mean.to(x.dtype), torch.sqrt(var).to(x.dtype)
        floor = self.eps * (x * m).abs().amax(dim=1, keepdim=True)
        return mean, std.maximum(floor).clamp_min(torch.finfo(x.dtype).tiny)

    def apply(self, x: torch.Tensor, stats, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, C) normalised with given statistics (e.g. frozen ones while streaming)."""
        mean, std = stats
        y = (x - mean) / std
        if mask is not None:
            y = y * mask.unsqueeze(-1).to(x.dtype)
        if self.log_weight is not None:
            y = y * self.weight + self.bias
        return y

    def denormalize(self, y: torch.Tensor, stats) -> torch.Tensor:
        """y (B, H, C) in normalised units -> the original units of ``stats``."""
        mean, std = stats
        if self.log_weight is not None:
            y = (y - self.bias) / self.weight
        return y * std + mean


def _moments(x: torch.Tensor, m: torch.Tensor):
    """Masked mean and variance over dim 1 of x (B, L, C) with weights m (B, L, 1)."""
    count = m.sum(dim=1, keepdim=True).clamp_min(1.0)
    mean = (x * m).sum(dim=1, keepdim=True) / count  # (B, 1, C)
    var = ((x - mean) ** 2 * m).sum(dim=1, keepdim=True) / count
    return mean, var
