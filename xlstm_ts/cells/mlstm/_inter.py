"""Inter-chunk pass with a hand-written backward: chunk summaries and the state scan.

Under autograd the loop of :func:`._math.advance` over NC chunks records a dozen
small nodes per chunk, and its backward allocates a fresh (B, NH, DQK, DV) gradient
for each of them. :func:`forward` runs the same loop without a graph and :func:`backward`
gives its gradients in closed form: the only sequential parts are two linear recursions,
the state gradient ``G_c = dC0_c + decay_c * G_{c+1}`` and the scalar one of the
stabilizer; everything else is a handful of batched products over blocks of chunks.

Shapes: k (B, NH, NC, L, DQK), v (B, NH, NC, L, DV), F and i (B, NH, NC, L) with F the
cumulative log forget gate within each chunk; the entering state C (B, NH, DQK, DV),
n (B, NH, DQK), m (B, NH). Outputs are the states entering each chunk, C0
(B, NH, NC, DQK, DV), n0 (B, NH, NC, DQK), m0 (B, NH, NC), and the state after the
last chunk. Numbers and gradients equal :func:`._math.chunk_summary` and
:func:`._math.advance` under autograd (``tests/test_mlstm.py``, float64); where two
candidates for a maximum tie exactly, the whole gradient goes to one of them.
"""

from __future__ import annotations

import torch


def _summary_weights(F: torch.Tensor, i: torch.Tensor):
    """Weight of each step at its chunk's end, stabilized by the chunk's max.

    Returns w (..., L), the stabilizer m_add (...), its argmax (...) and F_end (...)."""
    F_end = F[..., -1]
    log_w = F_end.unsqueeze(-1) - F + i
    m_add, argmax = log_w.max(-1)
    return torch.exp(log_w - m_add.unsqueeze(-1)), m_add, argmax, F_end


def _gates(m_prev: torch.Tensor, m_add: torch.Tensor, F_end: torch.Tensor):
    """decay, gain and m_new of :func:`._math.advance`; all (..., NC)."""
    carried = F_end + m_prev
    m_new = torch.maximum(carried, m_add)
    return torch.exp(carried - m_new), torch.exp(m_add - m_new), m_new, carried >= m_add


# Chunks per block: the block's (B, NH, nb, L, D) temporaries stay near 2 MB.
_BLOCK_ELEMENTS = 1 << 19


def _blocks(k: torch.Tensor) -> list[slice]:
    B, NH, NC, L, DQK = k.shape
    size = max(1, _BLOCK_ELEMENTS // (B * NH * L * DQK))
    return [slice(start, min(start + size, NC)) for start in range(0, NC, size)]


def forward(k, v, F, i, C, n, m):
    """The states entering each chunk (C0, n0, m0), the final state (C, n, m), and
    what :func:`backward` needs (a tuple of tensors to save)."""
    B, NH, NC, _, DQK = k.shape
    w, m_add, _, F_end = _summary_weights(F, i)
    C0 = C.new_empty(B, NH, NC, *C.shape[2:])
    n0 = n.new_empty(B, NH, NC, DQK)
    m_all = m.new_empty(B, NH, NC + 1)  # entering each chunk, then after the last
    m_all[:, :, 0] = m
    for blk in _blocks(k):
        kw = k[:, :, blk] * w[:, :, blk, :, None]  # (B, NH, nb, L, DQK)
        C_add = torch.matmul(kw.transpose(-1, -2), v[:, :, blk])  # (B, NH, nb, DQK, DV)
        n_add = kw.sum(-2)
        for j, c in enumerate(range(blk.start, blk.stop)):  # sequential: whole-matrix axpys
            C0[:, :, c], n0[:, :, c] = C, n
            decay, gain, m_all[:, :, c + 1], _ = _gates(m_all[:, :, c], m_add[..., c],
                                                        F_end[..., c])
            C = torch.mul(C_add[:, :, j], gain[..., None, None]).addcmul_(C, decay[..., None, None])
            n = torch.mul(n_add[:, :, j], gain[..., None]).addcmul_(n, decay[..., None])
    m0, m = m_all[:, :, :NC].clone(), m_all[:, :, NC].clone()
    return (C0, n0, m0), (C, n, m), (k, v, F, i, C0, n0, m_all)


def backward(saved, dC0, dn0, dm0, dC, dn, dm, dk, dv):
    """Gradients through :func:`forward`, walking the blocks of chunks from the last.

    dC0, dn0, dm0: gradients of the entering states; dC, dn, dm: of the final state.
    The gradients of k and v are added into ``dk`` and ``dv`` (B, NH, NC, L, D) in
    place; returns (dF, di, dC_in, dn_in, dm_in) for F, i and the state before chunk 0.
    """
    k, v, F, i, C0, n0, m_all = saved
    NC = k.shape[2]
    w, m_add, argmax, F_end = _summary_weights(F, i)
    decay, gain, _, carry_wins = _gates(m_all[:, :, :NC], m_add, F_end)
    dlog_w = torch.empty_like(F)
    d_carried = torch.empty_like(F_end)
    # G, Gn, gm: gradient of the state after the chunk being walked, from the final one.
    G, Gn, gm = dC, dn, dm
    for blk in reversed(_blocks(k)):
        # G_next[j]: gradient of the state after chunk blk.start + j, by the linear
        # recursion G_before = dC0 + decay * G_after (the same for n).
        G_next = C0.new_empty(*C0.shape[:2], blk.stop - blk.start, *C0.shape[3:])
        Gn_next = n0.new_empty(*G_next.shape[:-1])
        for j, c in reversed(list(enumerate(range(blk.start, blk.stop)))):
            G_next[:, :, j], Gn_next[:, :, j] = G, Gn
            G = torch.addcmul(dC0[:, :, c], G, decay[..., c, None, None])
            Gn = torch.addcmul(dn0[:, :, c], Gn, decay[..., c, None])

        # C_next = decay * C + gain * (kw^T v); n_next = decay * n + gain * kw.sum(L)
        k_b, v_b, w_b, gain_b = k[:, :, blk], v[:, :, blk], w[:, :, blk], gain[:, :, blk]
        kw = k_b * w_b.unsqueeze(-1)
        ddecay = (torch.linalg.vecdot(G_next.flatten(-2), C0[:, :, blk].flatten(-2))
                  + torch.linalg.vecdot(Gn_next, n0[:, :, blk]))
        kwG = torch.matmul(kw, G_next)  # (B, NH, nb, L, DV): kw @ dC_add / gain
        dgain = torch.linalg.vecdot(kwG, v_b).sum(-1) + torch.linalg.vecdot(Gn_next, kw.sum(-2))
        dv[:, :, blk].add_(kwG.mul_(gain_b[..., None, None]))
        dkw = torch.matmul(v_b, G_next.transpose(-1, -2)).add_(Gn_next.unsqueeze(-2))
        dkw.mul_(gain_b[..., None, None])  # (B, NH, nb, L, DQK)
        dk[:, :, blk].addcmul_(dkw, w_b.unsqueeze(-1))
        dlog_w_b = torch.linalg.vecdot(dkw, k_b).mul_(w_b)  # through w = exp(log_w - m_add)

        # decay = exp(F_end + m - m_new), gain = exp(m_add - m_new), m_new = max(F_end + m,
        # m_add): the stabilizer's scalar chain, sequential over chunks.
        a, b = ddecay * decay[:, :, blk], dgain * gain_b
        dm_add = torch.empty_like(a)
        for j, c in reversed(list(enumerate(range(blk.start, blk.stop)))):
            through_max = gm - a[..., j] - b[..., j]
            wins = carry_wins[..., c]
            d_carried[..., c] = a[..., j] + torch.where(wins, through_max, 0.0)
            dm_add[..., j] = b[..., j] + torch.where(wins, 0.0, through_max)
            gm = d_carried[..., c] + dm0[:, :, c]
        # m_add = max_s log_w[s]
        dm_add -= dlog_w_b.sum(-1)
        dlog_w_b.scatter_add_(-1, argmax[:, :, blk].unsqueeze(-1), dm_add.unsqueeze(-1))
        dlog_w[:, :, blk] = dlog_w_b

    # log_w = F_end - F + i, F_end = F[..., -1]
    dF = dlog_w.neg()
    dF[..., -1] += dlog_w.sum(-1) + d_carried
    return dF, dlog_w, G, Gn, gm
