"""The small parts of the TiRex-2 network: norms, feed-forwards, the residual MLP of
its patch embedding and head, and per-head projections.

Parameter names follow the checkpoint format (``proj_up_gate``, ``hidden_layer``, ...)
so released weights load without a renaming table."""

from __future__ import annotations

import torch
from torch import nn


class RMSNorm(nn.Module):
    """x / rms(x) * weight over the last dim (any leading dims)."""

    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32:  # reduced in float32 whatever the input
            return nn.functional.rms_norm(x.float(), x.shape[-1:], eps=self.eps).to(
                x.dtype) * self.weight
        return nn.functional.rms_norm(x, x.shape[-1:], self.weight, self.eps)


class HeadNorm(nn.Module):
    """Layer norm (mean and variance, no bias) within each head: (..., NH, DH) ->
    (..., NH * DH), reduced in float32."""

    def __init__(self, num_heads: int, head_dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_heads * head_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x.float(), x.shape[-1:], eps=self.eps)
        return y.to(x.dtype).flatten(-2) * self.weight


class SwiGLU(nn.Module):
    """silu(x W_gate) * (x W_up) W_down, no biases: the time mixers' feed-forward."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.proj_up_gate = nn.Linear(dim, hidden, bias=False)
        self.proj_up = nn.Linear(dim, hidden, bias=False)
        self.proj_down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.proj_up_gate(x)
        if torch.is_grad_enabled():
            return self.proj_down(nn.functional.silu(gate) * self.proj_up(x))
        return self.proj_down(nn.functional.silu(gate, inplace=True).mul_(self.proj_up(x)))


class MLP(nn.Module):
    """act(x W_i) W_o, no biases: the variate mixers' feed-forward."""

    def __init__(self, dim: int, hidden: int, activation: nn.Module):
        super().__init__()
        self.wi = nn.Linear(dim, hidden, bias=False)
        self.wo = nn.Linear(hidden, dim, bias=False)
        self.act = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.wo(self.act(self.wi(x)))


class ResidualMLP(nn.Module):
    """act(x W1 + b1) W2 + b2 + (x W3 + b3): the patch embedding and the output head."""

    def __init__(self, in_dim: int, hidden: int, out_dim: int, activation: nn.Module):
        super().__init__()
        self.hidden_layer = nn.Linear(in_dim, hidden)
        self.output_layer = nn.Linear(hidden, out_dim)
        self.residual_layer = nn.Linear(in_dim, out_dim)
        self.act = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output_layer(self.act(self.hidden_layer(x))) + self.residual_layer(x)


class HeadwiseLinear(nn.Module):
    """A block-diagonal linear map: head h of (..., NH * DH) through its own (DH, DH)
    weight, stored (NH, DH_out, DH_in)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.weight = nn.Parameter(torch.empty(num_heads, head_dim, head_dim))
        nn.init.normal_(self.weight, std=(2 / 5 / head_dim) ** 0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return headwise(x, self.weight)


def headwise(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """x (..., NH * DH_in) through per-head weights (NH, DH_out, DH_in) -> (..., NH * DH_out),
    as one batched matmul over the heads."""
    NH = weight.shape[0]
    heads = x.reshape(-1, NH, x.shape[-1] // NH).transpose(0, 1)  # (NH, N, DH_in)
    out = torch.bmm(heads, weight.transpose(1, 2))  # (NH, N, DH_out)
    return out.transpose(0, 1).reshape(*x.shape[:-1], -1)
