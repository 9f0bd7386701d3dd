"""Small layers the xLSTM blocks are built from.

Shapes: B batch, S steps, C channels, NH heads, DH head dim.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import nn


def small_init_(weight: torch.Tensor, dim: int) -> torch.Tensor:
    """Normal init with std sqrt(2 / (5 dim)) (Nguyen & Salazar, 2019), used by xLSTM."""
    return nn.init.normal_(weight, mean=0.0, std=math.sqrt(2.0 / (5.0 * dim)))


def wang_init_(weight: torch.Tensor, dim: int, num_blocks: int) -> torch.Tensor:
    """Normal init with std 2 / (num_blocks sqrt(dim)) for projections into the residual stream."""
    return nn.init.normal_(weight, mean=0.0, std=2.0 / (max(num_blocks, 1) * math.sqrt(dim)))


class CausalConv1d(nn.Module):
    """Depthwise causal convolution over time, with a carried state for streaming.

    ``forward(x (B, S, C), state (B, K-1, C) | None) -> (y (B, S, C), state)``, where the
    state holds the last K-1 inputs so that stepping equals a full pass.
    """

    def __init__(self, channels: int, kernel_size: int = 4):
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels, bias=True)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        B, S, C = x.shape
        if state is None:
            state = x.new_zeros(B, self.kernel_size - 1, C)
        padded = torch.cat([state, x], dim=1)  # (B, K-1+S, C)
        if S <= self.kernel_size:  # a few streamed steps: a weighted sum beats conv's set-up
            windows = padded.unfold(1, self.kernel_size, 1)  # (B, S, C, K)
            y = torch.linalg.vecdot(windows, self.conv.weight[:, 0]) + self.conv.bias
        else:
            y = self.conv(padded.transpose(1, 2)).transpose(1, 2)  # (B, S, C)
        return y, padded[:, S:]


class HeadwiseLinear(nn.Module):
    """Block-diagonal linear map: ``features`` split into ``num_blocks`` independent blocks.

    Costs ``features**2 / num_blocks`` weights instead of ``features**2``; xLSTM uses it for
    q/k/v (small blocks) and for the sLSTM gates (one block per head).
    """

    def __init__(self, features: int, num_blocks: int, bias: bool = False):
        super().__init__()
        self.num_blocks = num_blocks
        self.block = features // num_blocks
        self.weight = nn.Parameter(torch.empty(num_blocks, self.block, self.block))
        self.bias = nn.Parameter(torch.zeros(features)) if bias else None
        small_init_(self.weight, self.block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape  # (..., features)
        # one bmm over the blocks: as fast as einsum in training and faster for the
        # single rows of a streamed step, where einsum's set-up dominates
        blocks = x.reshape(-1, self.num_blocks, self.block).transpose(0, 1)  # (NB, N, blk)
        y = torch.bmm(blocks, self.weight).transpose(0, 1).reshape(shape)
        return y if self.bias is None else y + self.bias


class MultiHeadNorm(nn.Module):
    """Layer norm within each head: (..., NH, DH) -> (..., NH * DH), one scale per channel."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_heads, head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F_.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight
        return y.flatten(-2)


class Standardize(nn.Module):
    """Fixed per-column standardisation of the last axis, ``(x - loc) / scale``: puts
    covariates measured in any units (prices in thousands, shares in thousandths) on
    one footing before a linear layer mixes them with the normalised target.

    ``loc`` and ``scale`` (n,) are buffers, saved with the weights; identity until
    :meth:`set_`. An input with k < n columns uses the first k (the mixer passes its
    own covariates without the channels that follow them)."""

    def __init__(self, n: int):
        super().__init__()
        self.register_buffer("loc", torch.zeros(n))
        self.register_buffer("scale", torch.ones(n))

    @torch.no_grad()
    def set_(self, loc: torch.Tensor, scale: torch.Tensor) -> None:
        """Set the statistics, each (n,); a scale must be positive."""
        self.loc.copy_(loc)
        self.scale.copy_(scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = x.shape[-1]
        return (x - self.loc[:k]) / self.scale[:k]
