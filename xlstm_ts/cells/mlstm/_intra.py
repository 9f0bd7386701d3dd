"""Intra-chunk outputs with a hand-written backward that recomputes instead of storing.

:func:`._math.chunk_outputs` under autograd keeps several (..., L, L) intermediates
per chunk (log weights, weights, scores) for its backward: at L = 64 that is three
times the size of q, k and v together, and the backward walks each of them again.
:class:`ChunkOutputs` saves only what is O(L) per row (the stabilizer m, the
denominator, the output h and where each row's maximum sits) and rebuilds the
(L, L) weights in the backward, with in-place passes where the values are
not needed again. The numbers equal :func:`._math.chunk_outputs` and its autograd
gradients, including the gradient through the stabilizer, which reaches the output
through ``eps`` and the exp(-m) floor (``tests/test_mlstm.py`` checks both in float64).

Shapes as in :mod:`._math`: ``...`` is (B, NH, NC); q, k (..., L, DQK); v (..., L, DV);
F, i (..., L); C0 (..., DQK, DV); n0 (..., DQK); m0 (...).
"""

from __future__ import annotations

import torch

from ._math import _MAX_NEG_M


def _log_weights(F: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """D[t, s] = F_t - F_s + i_s for s <= t, -inf above the diagonal; (..., L, L)."""
    L = F.shape[-1]
    above = torch.ones(L, L, dtype=torch.bool, device=F.device).triu_(1)
    D = F.unsqueeze(-1) - (F - i).unsqueeze(-2)
    return D.masked_fill_(above, float("-inf"))


def _denominator_floor(m: torch.Tensor) -> torch.Tensor:
    return torch.exp(torch.clamp(-m, max=_MAX_NEG_M))


def _forward(q, k, v, F, i, C0, n0, m0, eps: float):
    """h and what the backward keeps: m, den (..., L), row_argmax, carry_wins (..., L)."""
    D = _log_weights(F, i)
    row_max, row_argmax = D.max(-1)  # (..., L)
    log_carry = F + m0.unsqueeze(-1)
    m = torch.maximum(row_max, log_carry)
    W = D.sub_(m.unsqueeze(-1)).exp_()  # weights exp(D - m), in place of D
    carry = torch.exp(log_carry - m)
    P = torch.matmul(q, k.transpose(-1, -2)).mul_(W)  # scores (..., L, L)
    num = torch.matmul(P, v).addcmul_(carry.unsqueeze(-1), torch.matmul(q, C0))
    den = P.sum(-1).addcmul_(carry, torch.matmul(q, n0.unsqueeze(-1)).squeeze(-1))
    z = torch.maximum(den.abs(), _denominator_floor(m)).add_(eps)
    h = num.div_(z.unsqueeze(-1))
    carry_wins = log_carry > row_max  # torch.maximum's gradient goes to the larger
    return h, m, den, row_argmax, carry_wins


def _backward(dh, q, k, v, F, i, C0, n0, m0, m, den, h, row_argmax, carry_wins, eps: float):
    """Gradients for q, k, v, F, i, C0, n0, m0 from dh (..., L, DV)."""
    # Readout h = num / z, z = max(|den|, floor) + eps.
    floor = _denominator_floor(m)
    den_wins = den.abs() >= floor
    z = torch.where(den_wins, den.abs(), floor).add_(eps)
    dnum = dh / z.unsqueeze(-1)  # (..., L, DV)
    dz = -(dh * h).sum(-1) / z  # (..., L)
    dden = torch.where(den_wins, dz * den.sign(), 0.0)
    # d floor / d m = -floor while -m is below the clamp, 0 beyond it
    dm = torch.where(den_wins | (-m >= _MAX_NEG_M), 0.0, -dz * floor)

    # Recompute the weights and scores.
    log_carry = F + m0.unsqueeze(-1)
    W = _log_weights(F, i).sub_(m.unsqueeze(-1)).exp_()
    carry = torch.exp(log_carry - m)
    QK = torch.matmul(q, k.transpose(-1, -2))
    P = QK * W

    # num = P v + carry * (q C0); den = P 1 + carry * (q n0)
    dv = torch.matmul(P.transpose(-1, -2), dnum)
    dP = torch.matmul(dnum, v.transpose(-1, -2)).add_(dden.unsqueeze(-1))
    dnum_C0 = torch.matmul(dnum, C0.transpose(-1, -2))  # (..., L, DQK)
    q_n0 = torch.matmul(q, n0.unsqueeze(-1)).squeeze(-1)
    dcarry = (dnum_C0 * q).sum(-1) + dden * q_n0
    dq = dnum_C0.addcmul_(dden.unsqueeze(-1), n0.unsqueeze(-2)).mul_(carry.unsqueeze(-1))
    q_carry = q * carry.unsqueeze(-1)
    dC0 = torch.matmul(q_carry.transpose(-1, -2), dnum)
    dn0 = (q_carry * dden.unsqueeze(-1)).sum(-2)

    # P = QK * W: through QK to q and k, through W = exp(D - m) to D and m.
    dQK = dP.mul_(W)
    dq += torch.matmul(dQK, k)
    dk = torch.matmul(dQK.transpose(-1, -2), q)
    dD = dQK.mul_(QK)  # dP * W * QK = dP * P
    dlog_carry = dcarry * carry
    dm = dm - dD.sum(-1) - dlog_carry
    # m = max(max_s D[t, s], log_carry_t): the gradient goes to whichever is larger.
    dlog_carry = dlog_carry + torch.where(carry_wins, dm, 0.0)
    dD.scatter_add_(-1, row_argmax.unsqueeze(-1), torch.where(carry_wins, 0.0, dm).unsqueeze(-1))

    # D[t, s] = F_t - F_s + i_s; log_carry_t = F_t + m0
    di = dD.sum(-2)
    dF = dD.sum(-1) - di + dlog_carry
    dm0 = dlog_carry.sum(-1)
    return dq, dk, dv, dF, di, dC0, dn0, dm0


# Chunks per block: the (block, L, L) temporaries stay near 2 MB, small enough to be
# reused from malloc's heap and to stay in cache between the passes over them.
_BLOCK_ELEMENTS = 1 << 19


def _blocks(n_chunks: int, L: int):
    size = max(1, _BLOCK_ELEMENTS // (L * L))
    return [slice(start, min(start + size, n_chunks)) for start in range(0, n_chunks, size)]


class ChunkOutputs(torch.autograd.Function):
    """h (..., L, DV) of every chunk from its entering state; see :func:`chunk_outputs`."""

    @staticmethod
    def forward(ctx, q, k, v, F, i, C0, n0, m0, eps: float):
        lead, (L, DV) = q.shape[:-2], v.shape[-2:]
        flat = [x.reshape(-1, *x.shape[len(lead):]) for x in (q, k, v, F, i, C0, n0, m0)]
        parts = [_forward(*(x[b] for x in flat), eps) for b in _blocks(flat[0].shape[0], L)]
        h, m, den, row_argmax, carry_wins = (torch.cat(p) for p in zip(*parts, strict=True))
        ctx.eps = eps
        ctx.save_for_backward(*flat, m, den, h, row_argmax, carry_wins)
        return h.reshape(*lead, L, DV)

    @staticmethod
    def backward(ctx, dh):
        saved = ctx.saved_tensors
        lead = dh.shape[:-2]
        dh = dh.reshape(-1, *dh.shape[-2:])
        parts = [_backward(dh[b], *(x[b] for x in saved), ctx.eps)
                 for b in _blocks(dh.shape[0], dh.shape[-2])]
        grads = (torch.cat(p) for p in zip(*parts, strict=True))
        return (*(g.reshape(*lead, *g.shape[1:]) for g in grads), None)


def chunk_outputs(q, k, v, F, i, C0, n0, m0, eps: float) -> torch.Tensor:
    """:func:`._math.chunk_outputs` with the recomputing backward; h (..., L, DV)."""
    return ChunkOutputs.apply(q, k, v, F, i, C0, n0, m0, eps)
