"""XLSTMStack: a residual pre-norm stack mixing mLSTM and sLSTM blocks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._checks import check_choice, check_positive_int
from ..cells import BACKENDS, MLSTM_FORMS
from .blocks import mLSTMBlock, sLSTMBlock


def _check_dropout(dropout: object) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)):
        raise TypeError(f"dropout must be a float in [0, 1). Got {type(dropout).__name__}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be a float in [0, 1). Got {dropout}.")
    return float(dropout)


class XLSTMStack(nn.Module):
    """A stack of ``num_blocks`` xLSTM blocks; sLSTM at the indices in ``slstm_at``,
    mLSTM elsewhere, followed by a final layer norm.

    Args:
        d_model: width D of the residual stream.
        num_blocks: number of blocks.
        slstm_at: indices (0-based) of the sLSTM blocks, e.g. ``(1,)`` for [m, s, m, m];
            ``()`` for an all-mLSTM stack.
        num_heads: heads of every cell.
        dropout: dropout on every residual branch.
        proj_factor: mLSTM up-projection factor.
        conv_kernel: causal conv kernel of both block kinds (sLSTM: 0 disables).
        mlstm_form, chunk_size: mLSTM execution form (see :func:`xlstm_ts.cells.mlstm`).
        slstm_forget: ``"sigmoid"`` or ``"exp"`` sLSTM forget gate.
        backend: ``"auto"`` (Triton kernels on CUDA when Triton is installed, else
            PyTorch), ``"triton"`` or ``"torch"``; see :func:`xlstm_ts.cells.mlstm`.

    ``forward(x (B, S, D), state=None, return_state=False)`` returns ``y (B, S, D)``;
    ``step(x_t (B, D), state)`` returns ``(y_t (B, D), state)`` and stepping through a
    sequence gives the same outputs as ``forward``.
    """

    def __init__(self, d_model: int, num_blocks: int, slstm_at: Sequence[int] = (),
                 num_heads: int = 4, dropout: float = 0.0, *, proj_factor: float = 2.0,
                 conv_kernel: int = 4, mlstm_form: str = "chunkwise", chunk_size: int = 64,
                 slstm_forget: str = "sigmoid", backend: str = "auto"):
        super().__init__()
        check_positive_int("d_model", d_model)
        check_positive_int("num_blocks", num_blocks)
        check_positive_int("num_heads", num_heads)
        check_positive_int("chunk_size", chunk_size)
        dropout = _check_dropout(dropout)
        check_choice("mlstm_form", mlstm_form, MLSTM_FORMS)
        check_choice("slstm_forget", slstm_forget, ("sigmoid", "exp"))
        check_choice("backend", backend, BACKENDS)
        slstm_at = tuple(slstm_at)
        bad = [j for j in slstm_at if isinstance(j, bool) or not isinstance(j, int)
               or not 0 <= j < num_blocks]
        if bad:
            raise ValueError(
                f"slstm_at must hold block indices in [0, {num_blocks}). Got {list(slstm_at)}."
            )
        if d_model % num_heads:
            raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads}).")
        self.d_model = d_model
        self.slstm_at = tuple(sorted(set(slstm_at)))
        self.blocks = nn.ModuleList(
            sLSTMBlock(d_model, num_heads, conv_kernel=conv_kernel, dropout=dropout,
                       forget=slstm_forget, num_blocks=num_blocks, backend=backend)
            if j in self.slstm_at else
            mLSTMBlock(d_model, num_heads, proj_factor=proj_factor, conv_kernel=conv_kernel,
                       dropout=dropout, form=mlstm_form, chunk_size=chunk_size,
                       num_blocks=num_blocks, backend=backend)
            for j in range(num_blocks)
        )
        self.post_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor, state: list | None = None, return_state: bool = False):
        """x: (B, S, D) -> y: (B, S, D), plus the per-block states when asked."""
        if not isinstance(x, torch.Tensor) or x.ndim != 3 or x.shape[-1] != self.d_model:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x must have shape (B, S, {self.d_model}). Got {got}.")
        states = state if state is not None else [None] * len(self.blocks)
        if len(states) != len(self.blocks):
            raise ValueError(
                f"state must hold one entry per block ({len(self.blocks)}). Got {len(states)}."
            )
        new_states = []
        for block, block_state in zip(self.blocks, states, strict=True):
            x, block_state = block(x, block_state, return_state=True)
            new_states.append(block_state)
        y = self.post_norm(x)
        return (y, new_states) if return_state else y

    def step(self, x_t: torch.Tensor, state: list | None = None):
        """One time step: x_t (B, D) -> (y_t (B, D), state). O(1) in the history length."""
        if not isinstance(x_t, torch.Tensor) or x_t.ndim != 2:
            got = tuple(x_t.shape) if isinstance(x_t, torch.Tensor) else type(x_t).__name__
            raise ValueError(f"x_t must have shape (B, {self.d_model}). Got {got}.")
        y, state = self.forward(x_t.unsqueeze(1), state, return_state=True)
        return y.squeeze(1), state
