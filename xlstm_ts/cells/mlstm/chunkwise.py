"""mLSTM, chunkwise form: recurrent across chunks, parallel within them.

The sequence is cut into NC = ceil(S / chunk_size) chunks of equal length L =
ceil(S / NC) <= chunk_size (70 steps: two chunks of 35, not of 64 with 58 padded
steps, which cost 3x the intra-chunk work). A short loop over chunks
carries the (DQK, DV) state from one chunk boundary to the next; then every
chunk's outputs are computed at once from its entering state with the
quadratic form of size (L, L). Cost O(S * L) time and memory, linear in S.
A ragged tail is padded with steps that carry no input (i = -inf) and do not
forget (log_f = 0), so the final state is the state after step S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from . import _inter, _intra


def mlstm_chunkwise(q, k, v, i, log_f, C, n, m, eps: float, chunk_size: int):
    """q, k (B, NH, S, DQK); v (B, NH, S, DV); i, log_f (B, NH, S); state (C, n, m).

    Returns h (B, NH, S, DV) and the final state.
    """
    B, NH, S, DQK = q.shape
    DV = v.shape[-1]
    NC = -(-S // chunk_size)
    L = -(-S // NC)  # chunks of at most chunk_size, as even as can be: least padding
    pad = NC * L - S
    if pad:
        q, k, v = (F_.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
        i = F_.pad(i, (0, pad), value=float("-inf"))
        log_f = F_.pad(log_f, (0, pad))  # log f = 0: the state passes through unchanged

    qc = q.reshape(B, NH, NC, L, DQK)
    kc = k.reshape(B, NH, NC, L, DQK)
    vc = v.reshape(B, NH, NC, L, DV)
    ic = i.reshape(B, NH, NC, L)
    Fc = log_f.reshape(B, NH, NC, L).cumsum(-1)  # cumulative log forget within each chunk

    h, C, n, m = _Chunkwise.apply(qc, kc, vc, Fc, ic, C, n, m, eps)  # h (B, NH, NC, L, DV)
    return h.reshape(B, NH, NC * L, DV)[:, :, :S], (C, n, m)


class _Chunkwise(torch.autograd.Function):
    """Both passes under one hand-written backward, so the gradients of k and v from
    the intra-chunk pass and from the chunk summaries land in one buffer each.

    Inter-chunk pass (:mod:`._inter`): every chunk's summary, then a loop of NC
    whole-state updates for the state entering each chunk. Intra-chunk pass
    (:mod:`._intra`): all chunks' outputs in parallel from their entering states.
    """

    @staticmethod
    def forward(ctx, qc, kc, vc, Fc, ic, C, n, m, eps: float):
        (C0, n0, m0), final, inter_saved = _inter.forward(kc, vc, Fc, ic, C, n, m)
        h, intra_saved = _intra.forward(qc, kc, vc, Fc, ic, C0, n0, m0, eps)
        ctx.eps, ctx.n_intra = eps, len(intra_saved)
        ctx.save_for_backward(*intra_saved, *inter_saved)
        return (h, *final)

    @staticmethod
    def backward(ctx, dh, dC, dn, dm):
        saved = ctx.saved_tensors
        dq, dk, dv, dF, di, dC0, dn0, dm0 = _intra.backward(dh, saved[:ctx.n_intra], ctx.eps)
        dF_inter, di_inter, dC, dn, dm = _inter.backward(saved[ctx.n_intra:], dC0, dn0, dm0,
                                                         dC, dn, dm, dk, dv)
        return dq, dk, dv, dF + dF_inter, di + di_inter, dC, dn, dm, None
