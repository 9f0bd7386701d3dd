"""Intra-chunk outputs with a hand-written backward that recomputes instead of storing.

:func:`._math.chunk_outputs` under autograd keeps several (..., L, L) intermediates
per chunk (log weights, weights, scores) for its backward: at L = 64 that is three
times the size of q, k and v together, and the backward walks each of them again.
:func:`forward` keeps only what is O(L) per row (the stabilizer m, the
denominator, the output h and where each row's maximum sits) and rebuilds the
(L, L) weights in :func:`backward`, with in-place passes where the values are
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


def _forward(q, k, v, F, i, C0, n0, m0, eps: float, h_out: torch.Tensor):
    """h, written into ``h_out`` (N, L, DV), and what the backward keeps: m, den,
    row_argmax, carry_wins, each (N, L)."""
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
    torch.div(num, z.unsqueeze(-1), out=h_out)
    carry_wins = log_carry > row_max  # torch.maximum's gradient goes to the larger
    return m, den, row_argmax, carry_wins


def _backward(dh, q, k, v, F, i, C0, n0, m0, m, den, h, row_argmax, carry_wins, eps: float,
              dq_out, dk_out, dv_out, dC0_out):
    """Gradients for q, k, v, F, i, C0, n0, m0 from dh (N, L, DV); those of q, k, v and
    C0 are written into the ``*_out`` tensors, the small ones returned (dF, di, dn0, dm0)."""
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
    torch.bmm(P.transpose(-1, -2), dnum, out=dv_out)
    dP = torch.matmul(dnum, v.transpose(-1, -2)).add_(dden.unsqueeze(-1))
    dnum_C0 = torch.matmul(dnum, C0.transpose(-1, -2))  # (..., L, DQK)
    q_n0 = torch.matmul(q, n0.unsqueeze(-1)).squeeze(-1)
    dcarry = (dnum_C0 * q).sum(-1) + dden * q_n0
    dq = dnum_C0.addcmul_(dden.unsqueeze(-1), n0.unsqueeze(-2)).mul_(carry.unsqueeze(-1))
    q_carry = q * carry.unsqueeze(-1)
    torch.bmm(q_carry.transpose(-1, -2), dnum, out=dC0_out)
    dn0 = (q_carry * dden.unsqueeze(-1)).sum(-2)

    # P = QK * W: through QK to q and k, through W = exp(D - m) to D and m.
    dQK = dP.mul_(W)
    torch.baddbmm(dq, dQK, k, out=dq_out)
    torch.bmm(dQK.transpose(-1, -2), q, out=dk_out)
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
    return dF, di, dn0, dm0


# Chunks per block: the (block, L, L) temporaries stay near 2 MB, small enough to be
# reused from malloc's heap and to stay in cache between the passes over them.
_BLOCK_ELEMENTS = 1 << 19


def _blocks(n_chunks: int, L: int):
    size = max(1, _BLOCK_ELEMENTS // (L * L))
    return [slice(start, min(start + size, n_chunks)) for start in range(0, n_chunks, size)]


def forward(q, k, v, F, i, C0, n0, m0, eps: float):
    """h (..., L, DV) of every chunk from its entering state, and what :func:`backward`
    needs (a tuple of tensors to save)."""
    lead, (L, DV) = q.shape[:-2], v.shape[-2:]
    flat = [x.reshape(-1, *x.shape[len(lead):]) for x in (q, k, v, F, i, C0, n0, m0)]
    h = q.new_empty(flat[0].shape[0], L, DV)  # written block by block: no concatenation
    parts = [_forward(*(x[b] for x in flat), eps, h[b]) for b in _blocks(h.shape[0], L)]
    m, den, row_argmax, carry_wins = (torch.cat(p) for p in zip(*parts, strict=True))
    return h.reshape(*lead, L, DV), (*flat, m, den, h, row_argmax, carry_wins)


def backward(dh: torch.Tensor, saved: tuple[torch.Tensor, ...], eps: float):
    """Gradients (dq, dk, dv, dF, di, dC0, dn0, dm0) from dh (..., L, DV)."""
    lead = dh.shape[:-2]
    dh = dh.reshape(-1, *dh.shape[-2:])
    q, k, v, C0 = saved[0], saved[1], saved[2], saved[5]
    big = [torch.empty_like(x) for x in (q, k, v, C0)]  # written block by block
    small = [_backward(dh[b], *(x[b] for x in saved), eps, *(g[b] for g in big))
             for b in _blocks(dh.shape[0], dh.shape[-2])]
    dF, di, dn0, dm0 = (torch.cat(p) for p in zip(*small, strict=True))
    dq, dk, dv, dC0 = big
    return tuple(g.reshape(*lead, *g.shape[1:]) for g in (dq, dk, dv, dF, di, dC0, dn0, dm0))
