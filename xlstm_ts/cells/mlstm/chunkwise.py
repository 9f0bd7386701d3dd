"""mLSTM, chunkwise form: recurrent across chunks, parallel within them.

The sequence is cut into NC chunks of length L. A short loop over chunks
carries the (DQK, DV) state from one chunk boundary to the next; then every
chunk's outputs are computed at once from its entering state with the
quadratic form of size (L, L). Cost O(S * L) time and memory, linear in S.
A ragged tail is padded with steps that carry no input (i = -inf) and do not
forget (log_f = 0), so the final state is the state after step S.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from . import _intra, _math


def mlstm_chunkwise(q, k, v, i, log_f, C, n, m, eps: float, chunk_size: int):
    """q, k (B, NH, S, DQK); v (B, NH, S, DV); i, log_f (B, NH, S); state (C, n, m).

    Returns h (B, NH, S, DV) and the final state.
    """
    B, NH, S, DQK = q.shape
    DV = v.shape[-1]
    L = min(chunk_size, S)
    NC = -(-S // L)
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

    # Inter-chunk pass: every chunk's summary in one batched matmul, then a loop
    # of NC elementwise updates to get the state entering each chunk.
    # (Unbinding once matters: indexing [:, :, c] in the loop would make autograd
    # scatter each chunk's gradient into a fresh full-size zero tensor, O(NC^2).)
    summaries = zip(*(x.unbind(2) for x in _math.chunk_summary(kc, vc, Fc, ic)), strict=True)
    entering = []
    for C_add, n_add, m_add, F_end in summaries:
        entering.append((C, n, m))
        C, n, m = _math.advance(C, n, m, C_add, n_add, m_add, F_end)
    C0, n0, m0 = (torch.stack(parts, dim=2) for parts in zip(*entering, strict=True))

    # Intra-chunk pass: all chunks in parallel.
    h = _intra.chunk_outputs(qc, kc, vc, Fc, ic, C0, n0, m0, eps)  # (B, NH, NC, L, DV)
    return h.reshape(B, NH, NC * L, DV)[:, :, :S], (C, n, m)
