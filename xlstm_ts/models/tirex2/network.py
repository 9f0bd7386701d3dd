"""The TiRex-2 network: standardise each row, cut it into patch tokens, embed them
with their missing-value mask, run the block stack, and read every token's quantiles
of the next patch.

Rows are variates (targets and covariates of every series in a batch), all of one
length T (NaN where unobserved or in the future). Time runs forward for every row
and, for rows of known covariates, also backward: a target's token at position l
sees its own past and those covariates' whole span, so the forecast of all future
patches comes out of one pass over context + future tokens.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import Block
from .config import ACTIVATIONS, TiRex2Config
from .layers import ResidualMLP, RMSNorm


class Standardizer:
    """Each row's mean and std over its observed steps; optionally arcsinh-squashed, and
    rows holding only 0, 1 and NaN left as they are (``binary_aware``)."""

    def __init__(self, eps: float, arcsinh: bool, binary_aware: bool):
        self.eps, self.arcsinh, self.binary_aware = eps, arcsinh, binary_aware

    def scale(self, x: torch.Tensor, state=None):
        """x (R, T) -> (scaled x, (loc (R, 1), scale (R, 1), binary (R, 1) | None)); with
        ``state`` (a stream's frozen statistics), x scaled by those instead."""
        if state is not None:
            return self._apply(x, state), state
        loc = torch.nan_to_num(torch.nanmean(x, -1, keepdim=True), nan=0.0)
        spread = torch.nanmean((x - loc) ** 2, -1, keepdim=True).sqrt()
        scale = torch.nan_to_num(spread, nan=1.0).clamp_min(self.eps)
        binary = None
        if self.binary_aware:
            binary = ((x == 0) | (x == 1) | x.isnan()).all(-1, keepdim=True)
            loc = torch.where(binary, 0.0, loc)
            scale = torch.where(binary, 1.0, scale)
        return self._apply(x, (loc, scale, binary)), (loc, scale, binary)

    def _apply(self, x: torch.Tensor, state) -> torch.Tensor:
        loc, scale, binary = state
        y = (x - loc) / scale
        if self.arcsinh:
            y = torch.arcsinh(y) if binary is None else torch.where(binary, y, torch.arcsinh(y))
        return y

    def unscale(self, y: torch.Tensor, state) -> torch.Tensor:
        """y (R, Q, T) back to data units."""
        loc, scale, binary = state
        if self.arcsinh:
            squashed = torch.sinh(y.clamp(-20.0, 20.0))
            y = squashed if binary is None else torch.where(binary[:, None], y, squashed)
        return y * scale[:, None] + loc[:, None]


class TiRex2Network(nn.Module):
    """``forward(x (R, T), group (R,), target (R,) bool, known (R,) bool)`` -> quantiles
    (R, Q, L * P) in data units: token l's forecast of the patch after it (L tokens of
    P steps; T is left-padded with NaN to whole patches).

    ``outputs``: only the last ``outputs`` tokens (the ones a forecast reads) leave the
    last block's recurrence: its feed-forward, the variate mixing and the head run
    on those alone (the result is their columns of the full output)."""

    def __init__(self, config: TiRex2Config):
        super().__init__()
        self.config = config
        D, P, Q = config.embedding_dim, config.patch_size, len(config.quantiles)
        self.scaler = Standardizer(config.scaler_eps, config.scaler_arcsinh,
                                   config.scaler_binary_aware)
        self.input_patch_embedding = ResidualMLP(2 * P, config.input_ff_dim, D,
                                                 ACTIVATIONS[config.activation]())
        self.stack = nn.ModuleList(Block(config, block, k) for k, block in enumerate(config.blocks))
        if config.out_norm == "rms":
            self.stack_out_norm = nn.RMSNorm(D, eps=config.out_norm_eps)
        elif config.out_norm == "layer":
            self.stack_out_norm = RMSNorm(D, config.out_norm_eps)
        else:
            self.stack_out_norm = nn.Identity()
        self.output_patch_embedding = ResidualMLP(D, int(D * config.h_expand), Q * P,
                                                  ACTIVATIONS[config.activation]())
        self.register_buffer("quantiles", torch.tensor(config.quantiles), persistent=False)

    def tokens(self, x: torch.Tensor):
        """x (R, T) -> embedded tokens (R, L, D) and the scaling state."""
        x, state = self.scaler.scale(x)
        return self.embed(x), state

    def embed(self, scaled: torch.Tensor) -> torch.Tensor:
        """Scaled rows (R, T), NaN where unobserved, left-padded to whole patches ->
        tokens (R, L, D)."""
        P = self.config.patch_size
        if scaled.shape[-1] % P:
            scaled = nn.functional.pad(scaled, (P - scaled.shape[-1] % P, 0), value=float("nan"))
        patches = scaled.unflatten(-1, (-1, P))  # (R, L, P)
        observed = (~patches.isnan()).to(patches.dtype)
        tokens = torch.cat([torch.nan_to_num(patches, nan=0.0), observed], dim=-1)
        return self.input_patch_embedding(tokens)

    def advance(self, tokens: torch.Tensor, group: torch.Tensor, target: torch.Tensor,
                states: list | None = None):
        """The block stack run forward in time only (no known-covariate rows) from
        ``states`` (one cell state per block; None: empty memories): tokens (R, n, D)
        -> (stack output (R, n, D), the states after the last token)."""
        h, after = tokens, []
        for k, block in enumerate(self.stack):
            h, state = block.advance(h, group, target, None if states is None else states[k])
            after.append(state)
        return h, after

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Stack output (R, L, D) -> each token's quantiles of the next patch (R, Q, L * P),
        in scaled units."""
        h = self.output_patch_embedding(self.stack_out_norm(h))  # (R, L, Q * P)
        return h.unflatten(-1, (len(self.config.quantiles), -1)).transpose(1, 2).flatten(-2)

    def forward(self, x: torch.Tensor, group: torch.Tensor, target: torch.Tensor,
                known: torch.Tensor, outputs: int | None = None) -> torch.Tensor:
        h, state = self.tokens(x)
        for k, block in enumerate(self.stack):
            # every position feeds the next block's recurrence; after the last
            # block's, only the positions read out are carried on
            h = block(h, group, target, known, outputs if k == len(self.stack) - 1 else None)
        return self.scaler.unscale(self.head(h), state)
