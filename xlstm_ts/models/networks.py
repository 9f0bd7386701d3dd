"""Forecasting networks: a patched xLSTM encoder and an xLSTMTime-style variant.

Both take one batch of windows from :class:`xlstm_ts.data.WindowDataset` (the
target history, its mask, covariates, static features) and return head
parameters for all H horizon steps in units normalised per window (RevIN);
``denormalize`` maps point forecasts and quantiles back. Channel-independent:
each series is its own sample, so one global model serves every series.

Shapes: B batch, L lookback, H horizon, P past covariates, F future covariates,
K static features, D model width, N patches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F_
from torch import nn

from .._checks import check_choice, check_positive_int
from .heads import build_head
from .revin import RevIN
from .stack import XLSTMStack

NETWORKS = ("patch", "xlstmtime")
HEADS = ("point", "quantile", "normal", "studentt")


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to build a network; saved with a fitted model."""

    lookback: int
    horizon: int
    network: str = "patch"  # "patch" (patched xLSTM encoder) or "xlstmtime"
    d_model: int = 64  # width of the xLSTM residual stream
    num_blocks: int = 2
    slstm_at: tuple[int, ...] = (1,)  # block indices that are sLSTM blocks
    num_heads: int = 4
    dropout: float = 0.1
    patch_len: int = 16  # "patch": steps per patch token
    patch_stride: int = 8  # "patch": steps between patch starts
    decomposition_kernel: int = 25  # "xlstmtime": moving-average window of the trend
    head: str = "point"  # "point", "quantile", "normal", "studentt"
    loss: str = "mse"  # point head: "mse", "mae", "huber"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    n_past: int = 0  # P
    n_future: int = 0  # F
    n_static: int = 0  # K
    revin_affine: bool = True

    def validate(self) -> NetworkConfig:
        for name in ("lookback", "horizon", "d_model", "num_blocks", "num_heads", "patch_len",
                     "patch_stride", "decomposition_kernel"):
            check_positive_int(name, getattr(self, name))
        check_choice("network", self.network, NETWORKS)
        check_choice("head", self.head, HEADS)
        if self.network == "patch" and self.lookback < self.patch_len:
            raise ValueError(f"lookback ({self.lookback}) must be at least patch_len "
                             f"({self.patch_len}). Raise lookback or lower patch_len.")
        return self

    @property
    def n_patches(self) -> int:
        return (self.lookback - self.patch_len) // self.patch_stride + 1


class _Forecaster(nn.Module):
    """Shared parts: RevIN on the target, static and future-covariate inputs, the head."""

    def __init__(self, config: NetworkConfig, d_features: int):
        super().__init__()
        self.config = config.validate()
        c = config
        self.revin = RevIN(1, affine=c.revin_affine)
        self.stack = XLSTMStack(c.d_model, c.num_blocks, slstm_at=c.slstm_at,
                                num_heads=c.num_heads, dropout=c.dropout)
        self.static = nn.Linear(c.n_static, c.d_model) if c.n_static else None
        d_head = d_features + c.horizon * c.n_future
        self.head = build_head(c.head, d_head, c.horizon, loss=c.loss, quantiles=c.quantiles)

    def _inputs(self, batch) -> tuple[torch.Tensor, tuple]:
        """Per-step input features (B, L, 2 + P + F) and the RevIN statistics."""
        c = self.config
        mask = batch["history_mask"]
        y, stats = self.revin.normalize(batch["history"].unsqueeze(-1), mask)  # (B, L, 1)
        parts = [y, mask.unsqueeze(-1).to(y.dtype)]
        if c.n_past:
            parts.append(batch["past"])
        if c.n_future:
            parts.append(batch["future"][:, : c.lookback])
        return torch.cat(parts, dim=-1), stats

    def _head_input(self, features: torch.Tensor, batch) -> torch.Tensor:
        if self.config.n_future:  # future-known covariates over the horizon enter the head
            ahead = batch["future"][:, self.config.lookback :].flatten(1)  # (B, H * F)
            features = torch.cat([features, ahead], dim=-1)
        return features

    def normalize_target(self, target: torch.Tensor, stats) -> torch.Tensor:
        """Targets (B, H) into the units the head predicts in."""
        y = (target.unsqueeze(-1) - stats[0]) / stats[1]
        if self.revin.weight is not None:
            y = y * self.revin.weight + self.revin.bias
        return y.squeeze(-1)

    def denormalize(self, values: torch.Tensor, stats) -> torch.Tensor:
        """Point forecasts (B, H) or quantiles (B, H, Q) back to data units."""
        squeeze = values.ndim == 2
        v = values.unsqueeze(-1) if squeeze else values
        out = self.revin.denormalize(v, stats)
        return out.squeeze(-1) if squeeze else out


class PatchXLSTM(_Forecaster):
    """RevIN -> patches of the lookback -> linear patch embedding (+ static) ->
    XLSTMStack over patch tokens -> flatten -> head (+ future covariates)."""

    def __init__(self, config: NetworkConfig):
        c = config.validate()
        super().__init__(c, c.n_patches * c.d_model)
        n_features = 2 + c.n_past + c.n_future
        self.embed = nn.Linear(c.patch_len * n_features, c.d_model)
        self.position = nn.Parameter(torch.zeros(c.n_patches, c.d_model))

    def forward(self, batch) -> tuple[torch.Tensor, tuple]:
        """Returns head parameters (normalised units) and the RevIN statistics."""
        c = self.config
        x, stats = self._inputs(batch)  # (B, L, C)
        patches = x.unfold(1, c.patch_len, c.patch_stride)  # (B, N, C, patch_len)
        tokens = self.embed(patches.flatten(2)) + self.position  # (B, N, D)
        if self.static is not None:
            tokens = tokens + self.static(batch["static"]).unsqueeze(1)
        hidden = self.stack(tokens)  # (B, N, D)
        return self.head(self._head_input(hidden.flatten(1), batch)), stats


class XLSTMTime(_Forecaster):
    """xLSTMTime-style: moving-average decomposition of the normalised history into
    trend and seasonal parts -> linear per-step embedding -> XLSTMStack over the L
    steps -> linear head on the last state (+ future covariates)."""

    def __init__(self, config: NetworkConfig):
        c = config.validate()
        super().__init__(c, c.d_model)
        n_features = 3 + c.n_past + c.n_future  # seasonal, trend, mask, covariates
        self.embed = nn.Linear(n_features, c.d_model)
        self.norm = nn.LayerNorm(c.d_model)

    def _decompose(self, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, L) -> (seasonal, trend): trend is a centred moving average, edges replicated."""
        k = self.config.decomposition_kernel
        padded = F_.pad(y.unsqueeze(1), ((k - 1) // 2, k // 2), mode="replicate")
        trend = F_.avg_pool1d(padded, k, stride=1).squeeze(1)
        return y - trend, trend

    def forward(self, batch) -> tuple[torch.Tensor, tuple]:
        x, stats = self._inputs(batch)  # (B, L, 2 + P + F): y, mask, covariates
        seasonal, trend = self._decompose(x[..., 0])
        features = torch.cat([seasonal.unsqueeze(-1), trend.unsqueeze(-1), x[..., 1:]], dim=-1)
        tokens = self.norm(self.embed(features))  # (B, L, D)
        if self.static is not None:
            tokens = tokens + self.static(batch["static"]).unsqueeze(1)
        hidden = self.stack(tokens)[:, -1]  # (B, D)
        return self.head(self._head_input(hidden, batch)), stats


def build_network(config: NetworkConfig) -> _Forecaster:
    """The network named by ``config.network``."""
    config.validate()
    return {"patch": PatchXLSTM, "xlstmtime": XLSTMTime}[config.network](config)
