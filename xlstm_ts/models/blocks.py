"""xLSTM blocks: the mLSTM block (pre-up-projection) and the sLSTM block
(post-up-projection), each a residual unit ``x -> x + branch(norm(x))``.

Shapes: B batch, S steps, D model width, NH heads, DH head dim.
Every block has ``forward(x (B, S, D), state=None, return_state=False)``; the
state it returns lets a later call (or a one-step call with S = 1) continue
exactly where the previous one stopped.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_
from torch import nn

from ..cells import mlstm, slstm
from .layers import CausalConv1d, HeadwiseLinear, MultiHeadNorm, small_init_, wang_init_


class mLSTMBlock(nn.Module):
    """Pre-up-projection block around the mLSTM cell.

    norm -> up-projection to 2 x inner -> (a) causal depthwise conv + SiLU feeding q and k,
    v from the unconvolved path, (b) output gate SiLU(z); mLSTM over NH heads -> per-head
    norm -> + learnable skip of the conv path -> x SiLU(z) -> down-projection -> residual.

    Args:
        d_model: width D of the residual stream.
        num_heads: mLSTM heads NH; ``inner = proj_factor * D`` must divide by it.
        proj_factor: up-projection factor (2 in the paper).
        conv_kernel: causal conv kernel size (4).
        qkv_block_size: block size of the block-diagonal q/k/v projections.
        dropout: dropout on the branch output.
        form, chunk_size, backend: passed to :func:`xlstm_ts.cells.mlstm`.
        num_blocks: depth of the enclosing stack, scales the down-projection init.
    """

    def __init__(self, d_model: int, num_heads: int = 4, *, proj_factor: float = 2.0,
                 conv_kernel: int = 4, qkv_block_size: int = 4, dropout: float = 0.0,
                 form: str = "chunkwise", chunk_size: int = 64, num_blocks: int = 1,
                 backend: str = "auto"):
        super().__init__()
        inner = round(proj_factor * d_model)
        if inner % num_heads or inner % qkv_block_size:
            raise ValueError(
                f"proj_factor * d_model = {inner} must be divisible by num_heads ({num_heads}) "
                f"and qkv_block_size ({qkv_block_size}). Change d_model or proj_factor."
            )
        self.num_heads, self.inner, self.form, self.chunk_size = num_heads, inner, form, chunk_size
        self.backend = backend
        self.norm = nn.LayerNorm(d_model)
        self.up = nn.Linear(d_model, 2 * inner, bias=False)
        self.conv = CausalConv1d(inner, conv_kernel)
        blocks = inner // qkv_block_size
        self.q_proj = HeadwiseLinear(inner, blocks)
        self.k_proj = HeadwiseLinear(inner, blocks)
        self.v_proj = HeadwiseLinear(inner, blocks)
        self.gates = nn.Linear(3 * inner, 2 * num_heads)  # (i, f) per head
        self.out_norm = MultiHeadNorm(num_heads, inner // num_heads)
        self.skip = nn.Parameter(torch.ones(inner))
        self.down = nn.Linear(inner, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

        small_init_(self.up.weight, d_model)
        wang_init_(self.down.weight, inner, num_blocks)
        # Gates start input-independent: forget biases spread over [3, 6] across heads
        # (memory horizons of ~20 to ~400 steps), input biases small.
        nn.init.zeros_(self.gates.weight)
        with torch.no_grad():
            self.gates.bias[:num_heads].normal_(0.0, 0.1)
            self.gates.bias[num_heads:] = torch.linspace(3.0, 6.0, num_heads)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        B, S, _ = x.shape
        NH, DH = self.num_heads, self.inner // self.num_heads
        conv_state, cell_state = state if state is not None else (None, None)

        x_m, z = self.up(self.norm(x)).chunk(2, dim=-1)  # (B, S, inner) each
        x_c, conv_state = self.conv(x_m, conv_state)
        x_c = F_.silu(x_c)
        q, k, v = self.q_proj(x_c), self.k_proj(x_c), self.v_proj(x_m)
        i, f = self.gates(torch.cat([q, k, v], dim=-1)).transpose(1, 2).chunk(2, dim=1)

        def heads(t):  # (B, S, inner) -> (B, NH, S, DH)
            return t.reshape(B, S, NH, DH).transpose(1, 2)

        form = "recurrent" if S == 1 else self.form  # a single step needs no chunking
        h, cell_state = mlstm(heads(q), heads(k), heads(v), i, f, form=form,
                              chunk_size=self.chunk_size, state=cell_state, return_state=True,
                              backend=self.backend)
        h = self.out_norm(h.transpose(1, 2))  # (B, S, inner)
        h = (h + self.skip * x_c) * F_.silu(z)
        y = x + self.dropout(self.down(h))
        return (y, (conv_state, cell_state)) if return_state else y


class GatedFeedForward(nn.Module):
    """Gated GeLU MLP: down(gelu(gate(x)) * up(x)), hidden = factor * D rounded up to 8."""

    def __init__(self, d_model: int, factor: float = 4.0 / 3.0, dropout: float = 0.0,
                 num_blocks: int = 1):
        super().__init__()
        hidden = -(-round(factor * d_model) // 8) * 8
        self.up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)
        small_init_(self.up.weight, d_model)
        wang_init_(self.down.weight, hidden, num_blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.up(x).chunk(2, dim=-1)
        return self.dropout(self.down(F_.gelu(gate) * up))


class sLSTMBlock(nn.Module):
    """Post-up-projection block around the sLSTM cell.

    norm -> optional causal conv + SiLU feeding the i and f gates (z and o see the
    normed input) -> headwise gate projections -> multi-head sLSTM with recurrent
    memory mixing -> per-head norm -> residual; then norm -> gated GeLU MLP (4/3) ->
    residual.

    Args:
        d_model: width D; must divide by ``num_heads``.
        num_heads: sLSTM heads NH.
        conv_kernel: causal conv kernel for the i/f path; 0 disables it.
        ffn_factor: hidden width of the MLP relative to D.
        dropout: dropout on both branch outputs.
        forget: ``"sigmoid"`` or ``"exp"`` forget gate, see :func:`xlstm_ts.cells.slstm`.
        backend: ``"auto"``, ``"triton"`` or ``"torch"``, see :func:`xlstm_ts.cells.slstm`.
        num_blocks: depth of the enclosing stack, scales the output-projection init.
    """

    def __init__(self, d_model: int, num_heads: int = 4, *, conv_kernel: int = 4,
                 ffn_factor: float = 4.0 / 3.0, dropout: float = 0.0, forget: str = "sigmoid",
                 num_blocks: int = 1, backend: str = "auto"):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(
                f"d_model ({d_model}) must be divisible by num_heads ({num_heads})."
            )
        self.num_heads, self.head_dim, self.forget = num_heads, d_model // num_heads, forget
        self.backend = backend
        DH = self.head_dim
        self.norm = nn.LayerNorm(d_model)
        self.conv = CausalConv1d(d_model, conv_kernel) if conv_kernel > 0 else None
        self.gate_i, self.gate_f, self.gate_z, self.gate_o = (
            HeadwiseLinear(d_model, num_heads, bias=True) for _ in range(4)
        )
        self.R = nn.Parameter(torch.empty(4, num_heads, DH, DH))
        self.out_norm = MultiHeadNorm(num_heads, DH)
        self.dropout = nn.Dropout(dropout)
        self.ffn_norm = nn.LayerNorm(d_model)
        self.ffn = GatedFeedForward(d_model, ffn_factor, dropout, num_blocks)

        small_init_(self.R, DH)
        # Forget biases spread over [3, 6] within each head: a range of memory horizons.
        with torch.no_grad():
            self.gate_f.bias.copy_(torch.linspace(3.0, 6.0, DH).repeat(num_heads))

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        B, S, _ = x.shape
        conv_state, cell_state = state if state is not None else (None, None)
        x_n = self.norm(x)
        x_c = x_n
        if self.conv is not None:
            x_c, conv_state = self.conv(x_n, conv_state)
            x_c = F_.silu(x_c)
        gates_x = torch.stack(
            [self.gate_i(x_c), self.gate_f(x_c), self.gate_z(x_n), self.gate_o(x_n)], dim=2
        ).reshape(B, S, 4, self.num_heads, self.head_dim)
        h, cell_state = slstm(gates_x, self.R, state=cell_state, forget=self.forget,
                              return_state=True, backend=self.backend)
        x = x + self.dropout(self.out_norm(h))  # (B, S, D)
        y = x + self.ffn(self.ffn_norm(x))
        return (y, (conv_state, cell_state)) if return_state else y
