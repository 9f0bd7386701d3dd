"""Training windows as TiRex-2 rows: the same layout :func:`..forecast.forecast`
packs, built from a batch of :class:`xlstm_ts.data.WindowDataset` windows (fixed
lookback L and horizon H) without the trend differencing (fine-tuning learns the
network's own forecast)."""

from __future__ import annotations

import torch
from torch import nn

from .forecast import horizon_quantiles, model_rows
from .network import TiRex2Network


def window_quantiles(net: TiRex2Network, batch: dict) -> torch.Tensor:
    """Quantiles (B, Q, H) of each window's horizon in data units.

    ``batch``: ``history`` (B, L), ``history_mask`` (B, L), ``target`` (B, H),
    ``past`` (B, L, P), ``future`` (B, L + H, F), as :class:`WindowDataset` yields."""
    history = batch["history"].masked_fill(~batch["history_mask"], float("nan"))
    B, L = history.shape
    H = batch["target"].shape[1]
    past, future = batch["past"], batch["future"]
    nan = float("nan")
    rows = [nn.functional.pad(history, (0, H), value=nan)[:, None]]  # (B, 1, L + H)
    if past.shape[-1]:
        rows.append(nn.functional.pad(past.transpose(1, 2), (0, H), value=nan))
    if future.shape[-1]:
        rows.append(future.transpose(1, 2)[..., :L + H])
    x = model_rows(torch.cat(rows, dim=1), net, H)  # (B, V, T)
    V = x.shape[1]
    group = torch.arange(B, device=x.device).repeat_interleave(V)
    target = torch.zeros(B, V, dtype=torch.bool, device=x.device)
    target[:, 0] = True
    return horizon_quantiles(net, x.reshape(B * V, -1), group, target.reshape(-1), H)


def quantile_loss(quantiles: torch.Tensor, levels: torch.Tensor, batch: dict) -> torch.Tensor:
    """Mean pinball loss of ``quantiles`` (B, Q, H) at ``levels`` (Q,) over the observed
    target steps, each window's errors divided by its history's std (a scale-free
    loss: every window counts alike, whatever its units; a flat history's scale is a
    thousandth of its level)."""
    history = batch["history"].masked_fill(~batch["history_mask"], float("nan"))
    mean = torch.nan_to_num(history.nanmean(-1, keepdim=True))
    spread = torch.nan_to_num(((history - mean) ** 2).nanmean(-1, keepdim=True).sqrt(), nan=0.0)
    # a flat history has no spread: its level sets the scale (1e-8 for an all-zero one)
    scale = spread.maximum(1e-3 * mean.abs()).clamp_min(1e-8)
    target = torch.nan_to_num(batch["target"])[:, None]  # (B, 1, H)
    error = (target - quantiles) / scale[:, None]
    q = levels.to(quantiles.dtype)[None, :, None]
    pinball = torch.maximum(q * error, (q - 1) * error)
    mask = batch["target_mask"][:, None].expand_as(pinball)
    return (pinball * mask).sum() / mask.sum().clamp_min(1)
