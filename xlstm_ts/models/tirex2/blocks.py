"""The TiRex-2 block: a bidirectional xLSTM across time, then attention across the
variates of each series at every patch position.

Shapes: R rows (one per variate of every series in the batch, targets and
covariates), L patch tokens, D the embedding. Time mixing sees (R, L, D); variate
mixing sees (L, R, D) and lets each row attend only to rows of its own series, and
covariate rows never to target rows."""

from __future__ import annotations

import torch
from torch import nn

from ...cells import mlstm, slstm
from ...cells.slstm.recurrent import slstm_inference_laid
from .config import ACTIVATIONS, BlockConfig, TiRex2Config
from .layers import MLP, HeadNorm, HeadwiseLinear, RMSNorm, SwiGLU, headwise

GATE_CAP = 15.0  # soft cap of the mLSTM's gate pre-activations


def soft_cap(x: torch.Tensor, cap: float) -> torch.Tensor:
    """``cap * tanh(x / cap)``: x where small, bounded by +-cap."""
    return cap * torch.tanh(x / cap)


class MLSTMLayer(nn.Module):
    """mLSTM over (R, L, D): queries and keys of D/2, values of D, an output gate,
    head-wise layer norm and an output projection (xLSTM-7B's layer, no convolution).

    ``form``: the cell form (:func:`xlstm_ts.cells.mlstm`); all give the same numbers,
    ``"parallel"`` is the fastest for the few dozen tokens of a TiRex-2 context."""

    def __init__(self, dim: int, num_heads: int, eps: float, norm_eps: float):
        super().__init__()
        self.num_heads, self.eps = num_heads, eps
        self.q = nn.Linear(dim, dim // 2, bias=False)
        self.k = nn.Linear(dim, dim // 2, bias=False)
        self.v = nn.Linear(dim, dim, bias=False)
        self.ogate_preact = nn.Linear(dim, dim, bias=False)
        self.igate_preact = nn.Linear(dim, num_heads)
        self.fgate_preact = nn.Linear(dim, num_heads)
        self.multihead_norm = HeadNorm(num_heads, dim // num_heads, norm_eps)
        self.out_proj = nn.Linear(dim, dim, bias=False)
        with torch.no_grad():  # the xLSTM gate init: forget gates open, input gates near 0
            self.fgate_preact.weight.zero_()
            self.fgate_preact.bias.copy_(torch.linspace(3.0, 6.0, num_heads))
            self.igate_preact.weight.zero_()
            nn.init.normal_(self.igate_preact.bias, std=0.1)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (R, NH, L, DH)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (R, L, D) -> (R, L, D) [, final cell state]."""
        q, k, v = self._heads(self.q(x)), self._heads(self.k(x)), self._heads(self.v(x))
        i = soft_cap(self.igate_preact(x), GATE_CAP).transpose(1, 2)  # (R, NH, L)
        f = soft_cap(self.fgate_preact(x), GATE_CAP).transpose(1, 2)
        form = "parallel" if x.shape[1] <= 256 else "chunkwise"
        h = mlstm(q, k, v, i, f, form=form, eps=self.eps, state=state,
                  return_state=return_state, backend="torch" if x.device.type == "cpu"
                  else "auto")
        h, final = h if return_state else (h, None)
        y = torch.sigmoid(self.ogate_preact(x)) * self.multihead_norm(h.transpose(1, 2))
        y = self.out_proj(y)
        return (y, final) if return_state else y


class SLSTMLayer(nn.Module):
    """sLSTM over (R, L, D): four head-wise input projections, recurrent weights and
    biases per head, head-wise norm. (FlashRNN's sLSTM floors its normalizer at 1;
    from an empty state the stabilised normalizer never falls below 1, so the cell
    needs no floor to give the same numbers.)

    Checkpoint layout: ``_recurrent_kernel_`` (NH, DH_in, 4, DH_out), ``_bias_`` (NH, 4,
    DH); gate slots in the order (i, f, z, o) of the cell, fed by the projections
    ``fgate``, ``igate``, ``zgate``, ``ogate`` in that order (the names are the
    checkpoint's; the first feeds the input gate)."""

    def __init__(self, dim: int, num_heads: int, block_idx: int, num_blocks: int):
        super().__init__()
        self.num_heads, head_dim = num_heads, dim // num_heads
        self.fgate = HeadwiseLinear(dim, num_heads)
        self.igate = HeadwiseLinear(dim, num_heads)
        self.zgate = HeadwiseLinear(dim, num_heads)
        self.ogate = HeadwiseLinear(dim, num_heads)
        self._recurrent_kernel_ = nn.Parameter(torch.zeros(num_heads, head_dim, 4, head_dim))
        self._bias_ = nn.Parameter(torch.zeros(num_heads, 4, head_dim))
        self.group_norm = HeadNorm(num_heads, head_dim)
        with torch.no_grad():  # forget-gate biases spread by a power law across depth
            depth = block_idx / (num_blocks - 1) if num_blocks > 1 else 0.0
            position = torch.arange(head_dim) / max(head_dim - 1, 1)
            self._bias_[:, 1] = 5.0 - 12.0 * position ** (0.3 + 1.3 * depth)

    def gates(self, x: torch.Tensor) -> torch.Tensor:
        """Input part of the gate pre-activations, (R, L, 4, NH, DH), bias included: the
        four head-wise projections as one batched matmul."""
        gx = headwise(x, self._gate_weight()).unflatten(-1, (self.num_heads, 4, -1))
        return gx.transpose(2, 3) + self._bias_.transpose(0, 1)

    def _gate_weight(self) -> torch.Tensor:
        """The four gate projections side by side, (NH, 4 * DH, DH), in slot order. Kept
        between calls without autograd while no weight changed (a streamed step is a
        single token: joining the weights would cost as much as using them)."""
        weights = [p.weight for p in (self.fgate, self.igate, self.zgate, self.ogate)]
        if torch.is_grad_enabled():
            return torch.cat(weights, dim=1)
        key = tuple((w.data_ptr(), w._version) for w in weights)
        cached = self.__dict__.get("_joined")
        if cached is None or cached[0] != key:
            cached = (key, torch.cat(weights, dim=1))
            self.__dict__["_joined"] = cached
        return cached[1]

    def _forecast(self, x: torch.Tensor) -> torch.Tensor:
        """h (R, L, NH, DH) from an empty state, without autograd: the gates computed
        straight into the recurrence's (L, NH, R, 4 * DH) layout, bias added on the way."""
        R, L, D = x.shape
        NH, DH = self.num_heads, D // self.num_heads
        heads = x.transpose(0, 1).reshape(L * R, NH, DH).transpose(0, 1)  # (NH, L * R, DH)
        gx = torch.bmm(heads, self._gate_weight().transpose(1, 2)).view(NH, L, R, 4 * DH)
        laid = x.new_empty(L, NH, R, 4 * DH)
        torch.add(gx.permute(1, 0, 2, 3), self._bias_.reshape(NH, 1, 4 * DH), out=laid)
        zeros = x.new_zeros(NH, R, DH)
        h, _ = slstm_inference_laid(laid, self._recurrent_kernel_.reshape(NH, DH, 4 * DH),
                                    zeros, zeros, zeros, torch.full_like(zeros, -torch.inf))
        return h.permute(2, 0, 1, 3)  # (R, L, NH, DH)

    @property
    def recurrent(self) -> torch.Tensor:
        """Recurrent weights in the cell's layout, (4, NH, DH, DH)."""
        return self._recurrent_kernel_.permute(2, 0, 1, 3)

    def forward(self, x: torch.Tensor, state=None, return_state: bool = False):
        """x (R, L, D) -> (R, L, D) [, final cell state]."""
        if state is None and not return_state and not torch.is_grad_enabled():
            return self.group_norm(self._forecast(x))
        h = slstm(self.gates(x), self.recurrent, state=state, return_state=return_state)
        h, final = h if return_state else (h, None)
        y = self.group_norm(h)
        return (y, final) if return_state else y


class TimeMixer(nn.Module):
    """Pre-norm xLSTM across time with a residual, then a pre-norm SwiGLU with a
    residual. Every row runs forward in time; rows of known covariates (values over
    the horizon) also run backward, with the same cell, and their two directions are
    joined by ``combination`` (2D -> D)."""

    def __init__(self, config: TiRex2Config, block: BlockConfig, block_idx: int):
        super().__init__()
        D = config.embedding_dim
        self.norm_lstm = RMSNorm(D, config.norm_eps)
        if block.time_mixer == "bi-mlstm":
            self.fwd_cell = MLSTMLayer(D, block.recurrent_heads, config.mlstm_eps,
                                       config.norm_eps)
        else:
            self.fwd_cell = SLSTMLayer(D, block.recurrent_heads, block_idx, len(config.blocks))
        self.combination = nn.Linear(2 * D, D, bias=False)
        self.norm_ffn = RMSNorm(D, config.norm_eps)
        self.ffn = SwiGLU(D, config.ffn_dim)

    def forward(self, x: torch.Tensor, known: torch.Tensor, keep: int | None = None):
        """x (R, L, D); known (R,) bool, the rows that also run backward. ``keep``: return
        only the last ``keep`` positions (R, keep, D) (the recurrence still runs over all)."""
        x_norm = self.norm_lstm(x)
        out = self.fwd_cell(x_norm)
        rows = known.nonzero().squeeze(1)
        if len(rows):
            backward = self.fwd_cell(x_norm[rows].flip(1)).flip(1)
            out = out.index_copy(0, rows, self.combination(torch.cat([out[rows], backward], -1)))
        if keep is not None:
            x, out = x[:, -keep:], out[:, -keep:]
        out = x + out
        return out + self.ffn(self.norm_ffn(out))

    def advance(self, x: torch.Tensor, state=None):
        """Forward in time only, from the cell ``state`` (None: empty): x (R, n, D) ->
        ((R, n, D), the cell state after the last position)."""
        out, state = self.fwd_cell(self.norm_lstm(x), state, return_state=True)
        out = x + out
        return out + self.ffn(self.norm_ffn(out)), state


class VariateMixer(nn.Module):
    """Attention across rows at each token position, within each series (``group``),
    covariates never attending to targets; pre-norm, residual, then a pre-norm MLP.
    Rows alone in their series pass unchanged (univariate series cost nothing here)."""

    def __init__(self, config: TiRex2Config, block: BlockConfig):
        super().__init__()
        D = config.embedding_dim
        self.num_heads, self.use_qk_norm = block.variate_heads, block.use_qk_norm
        self.norm_attn = nn.RMSNorm(D, eps=1e-6)
        self.attn = nn.Module()  # checkpoint names: attn.WQ / WK / WV / WO
        for name in ("WK", "WQ", "WV", "WO"):
            setattr(self.attn, name, nn.Linear(D, D, bias=False))
        self.norm_ffn = nn.RMSNorm(D, eps=1e-6)
        self.ffn = MLP(D, 4 * D, ACTIVATIONS[config.activation]())

    def forward(self, x: torch.Tensor, group: torch.Tensor, target: torch.Tensor):
        """x (L, R, D); group (R,) series index of each row; target (R,) bool."""
        _, inverse, counts = torch.unique(group, return_inverse=True, return_counts=True)
        shared = counts[inverse] > 1
        if not bool(shared.any()):
            return x
        rows = shared.nonzero().squeeze(1)
        y, g, t = x[:, rows], group[rows], target[rows]
        allowed = (g[:, None] == g[None, :]) & ~(~t[:, None] & t[None, :])  # (query, key)
        y = y + self._attention(self.norm_attn(y), allowed)
        y = y + self.ffn(self.norm_ffn(y))
        return x.index_copy(1, rows, y)

    def _attention(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        def heads(t):  # (L, R, D) -> (L, NH, R, DH)
            return t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

        q, k, v = heads(self.attn.WQ(x)), heads(self.attn.WK(x)), heads(self.attn.WV(x))
        if self.use_qk_norm:
            q = nn.functional.rms_norm(q, (q.shape[-1],))
            k = nn.functional.rms_norm(k, (k.shape[-1],))
        out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        return self.attn.WO(out.transpose(1, 2).flatten(-2))


class Block(nn.Module):
    """Time mixing, then variate mixing."""

    def __init__(self, config: TiRex2Config, block: BlockConfig, block_idx: int):
        super().__init__()
        self.time_mixer = TimeMixer(config, block, block_idx)
        self.variate_mixer = VariateMixer(config, block)

    def forward(self, x, group, target, known, keep: int | None = None):
        """x (R, L, D) -> (R, L, D), or the last ``keep`` positions (R, keep, D)."""
        x = self.time_mixer(x, known, keep)
        return self.variate_mixer(x.transpose(0, 1), group, target).transpose(0, 1)

    def advance(self, x, group, target, state=None):
        """:meth:`forward` with every row forward in time only, from the cell ``state``:
        x (R, n, D) -> ((R, n, D), the cell state after the last position)."""
        x, state = self.time_mixer.advance(x, state)
        return self.variate_mixer(x.transpose(0, 1), group, target).transpose(0, 1), state
