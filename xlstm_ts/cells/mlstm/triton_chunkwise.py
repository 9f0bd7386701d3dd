"""mLSTM chunkwise form in Triton: forward and backward kernels, and the step kernel.

The same math as :mod:`.chunkwise` and :mod:`._math` (read those first), split into
four kernels, each a loop or a tile over one (batch x head) row ``bh``:

- ``_fw_states``: recurrent over the NC chunks, the state entering each chunk
  (C (DQK, DV) in float32 registers, n, m), one program per (bh, DV block).
- ``_fw_outputs``: parallel over chunks, the quadratic form of size (L, L) plus
  the entering state's share, one program per (bh, chunk).
- ``_bw_states``: recurrent over chunks in reverse, the gradient of each
  entering state (dC, dn).
- ``_bw_grads``: parallel over chunks, dq, dk, dv and the gate gradients.

In the backward pass the kernels hold the stabilizers constant (h does not
depend on them except through ``eps``); the stabilized state outputs (C, n, m) do,
and :func:`_stabilizer_grads` adds that chain chunk by chunk, so gradients match
autograd through the PyTorch reference also for losses on the returned state. Pointer
arithmetic only (no block pointers: Triton 3.9 removed them). Matmuls take the
input dtype (bf16 / fp16 on tensor cores; fp32 at IEEE precision); gates, states
and all accumulation are float32. Layout inside: q, k (BH, S, DQK), v (BH, S, DV),
gates (BH, S), S padded to a multiple of the chunk length L.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_
import triton
import triton.language as tl


@triton.jit
def _fw_states(K, V, I, LF, C0, N0, M0, Cs, Ns, Ms, NC, S_pad,
               DQK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, BK: tl.constexpr,
               BV: tl.constexpr, PREC: tl.constexpr):
    bh = tl.program_id(0)
    vb = tl.program_id(1)
    offs_l = tl.arange(0, L)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    mk = offs_k < DQK
    mv = offs_v < DV
    mkv = mk[:, None] & mv[None, :]
    C = tl.load(C0 + bh * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], mask=mkv, other=0.0)
    n = tl.load(N0 + bh * DQK + offs_k, mask=mk, other=0.0)
    m = tl.load(M0 + bh)
    for c in range(NC):
        state = bh * (NC + 1) + c
        tl.store(Cs + state * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], C, mask=mkv)
        if vb == 0:  # one program per bh writes n and m
            tl.store(Ns + state * DQK + offs_k, n, mask=mk)
            tl.store(Ms + state, m)
        rows = bh * S_pad + c * L + offs_l
        lf = tl.load(LF + rows)
        ig = tl.load(I + rows)
        F = tl.cumsum(lf, 0)
        F_end = tl.sum(lf, 0)
        log_w = F_end - F + ig
        m_new = tl.maximum(F_end + m, tl.max(log_w, 0))
        decay = tl.exp(F_end + m - m_new)
        w = tl.exp(log_w - m_new)
        k = tl.load(K + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
        v = tl.load(V + rows[:, None] * DV + offs_v[None, :], mask=mv[None, :], other=0.0)
        kw = k.to(tl.float32) * w[:, None]
        C = C * decay + tl.dot(tl.trans(kw).to(v.dtype), v, input_precision=PREC)
        n = n * decay + tl.sum(kw, 0)
        m = m_new
    state = bh * (NC + 1) + NC
    tl.store(Cs + state * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], C, mask=mkv)
    if vb == 0:
        tl.store(Ns + state * DQK + offs_k, n, mask=mk)
        tl.store(Ms + state, m)


@triton.jit
def _fw_outputs(Q, K, V, I, LF, Cs, Ns, Ms, H, Mt, Den, NC, S_pad, eps,
                DQK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, BK: tl.constexpr,
                BV: tl.constexpr, PREC: tl.constexpr):
    bh = tl.program_id(0)
    c = tl.program_id(1)
    offs_l = tl.arange(0, L)
    offs_k = tl.arange(0, BK)
    offs_v = tl.arange(0, BV)
    mk = offs_k < DQK
    mv = offs_v < DV
    rows = bh * S_pad + c * L + offs_l
    q = tl.load(Q + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
    k = tl.load(K + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
    v = tl.load(V + rows[:, None] * DV + offs_v[None, :], mask=mv[None, :], other=0.0)
    F = tl.cumsum(tl.load(LF + rows), 0)
    ig = tl.load(I + rows)
    state = bh * (NC + 1) + c
    C0 = tl.load(Cs + state * DQK * DV + offs_k[:, None] * DV + offs_v[None, :],
                 mask=mk[:, None] & mv[None, :], other=0.0)
    n0 = tl.load(Ns + state * DQK + offs_k, mask=mk, other=0.0)
    m0 = tl.load(Ms + state)

    causal = offs_l[:, None] >= offs_l[None, :]
    D = tl.where(causal, F[:, None] - F[None, :] + ig[None, :], float("-inf"))
    carry = F + m0
    m_t = tl.maximum(tl.max(D, 1), carry)
    W = tl.exp(D - m_t[:, None])
    a = tl.exp(carry - m_t)
    scores = tl.dot(q, tl.trans(k), input_precision=PREC) * W  # (L, L) float32
    num = tl.dot(scores.to(v.dtype), v, input_precision=PREC)
    num += a[:, None] * tl.dot(q, C0.to(q.dtype), input_precision=PREC)
    den = tl.sum(scores, 1) + a * tl.sum(q.to(tl.float32) * n0[None, :], 1)
    h = num / (tl.maximum(tl.abs(den), tl.exp(-m_t)) + eps)[:, None]
    tl.store(H + rows[:, None] * DV + offs_v[None, :], h.to(H.dtype.element_ty),
             mask=mv[None, :])
    tl.store(Mt + rows, m_t)
    tl.store(Den + rows, den)


@triton.jit
def _bw_states(Q, LF, Ms, Mt, DNUM, DDEN, dC_last, dn_last, dCs, dNs, NC, S_pad,
               DQK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr, BK: tl.constexpr,
               BV: tl.constexpr, PREC: tl.constexpr):
    bh = tl.program_id(0)
    vb = tl.program_id(1)
    offs_l = tl.arange(0, L)
    offs_k = tl.arange(0, BK)
    offs_v = vb * BV + tl.arange(0, BV)
    mk = offs_k < DQK
    mv = offs_v < DV
    mkv = mk[:, None] & mv[None, :]
    dC = tl.load(dC_last + bh * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], mask=mkv,
                 other=0.0)
    dn = tl.load(dn_last + bh * DQK + offs_k, mask=mk, other=0.0)
    for j in range(NC):
        c = NC - 1 - j
        state = bh * (NC + 1) + c
        tl.store(dCs + (state + 1) * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], dC,
                 mask=mkv)
        if vb == 0:
            tl.store(dNs + (state + 1) * DQK + offs_k, dn, mask=mk)
        rows = bh * S_pad + c * L + offs_l
        lf = tl.load(LF + rows)
        F = tl.cumsum(lf, 0)
        F_end = tl.sum(lf, 0)
        m0 = tl.load(Ms + state)
        m1 = tl.load(Ms + state + 1)
        a = tl.exp(F + m0 - tl.load(Mt + rows))
        q = tl.load(Q + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
        dnum = tl.load(DNUM + rows[:, None] * DV + offs_v[None, :], mask=mv[None, :], other=0.0)
        qa = q.to(tl.float32) * a[:, None]
        decay = tl.exp(F_end + m0 - m1)
        dC = dC * decay + tl.dot(tl.trans(qa), dnum, input_precision=PREC)
        dn = dn * decay + tl.sum(qa * tl.load(DDEN + rows)[:, None], 0)
    state = bh * (NC + 1)
    tl.store(dCs + state * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], dC, mask=mkv)
    if vb == 0:
        tl.store(dNs + state * DQK + offs_k, dn, mask=mk)


@triton.jit
def _bw_grads(Q, K, V, I, LF, Cs, Ns, Ms, Mt, DNUM, DDEN, dCs, dNs, dQ, dK, dV, dF, dI, AUX,
              NC, S_pad, DQK: tl.constexpr, DV: tl.constexpr, L: tl.constexpr,
              BK: tl.constexpr, BV: tl.constexpr, PREC: tl.constexpr):
    """BV is a block of DV: the value dimension is walked in blocks so that the
    (DQK, DV) state tiles never sit on chip whole (shared memory)."""
    bh = tl.program_id(0)
    c = tl.program_id(1)
    offs_l = tl.arange(0, L)
    offs_k = tl.arange(0, BK)
    mk = offs_k < DQK
    rows = bh * S_pad + c * L + offs_l
    q = tl.load(Q + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
    k = tl.load(K + rows[:, None] * DQK + offs_k[None, :], mask=mk[None, :], other=0.0)
    qf, kf = q.to(tl.float32), k.to(tl.float32)
    lf = tl.load(LF + rows)
    F = tl.cumsum(lf, 0)
    F_end = tl.sum(lf, 0)
    ig = tl.load(I + rows)
    m_t = tl.load(Mt + rows)
    dden = tl.load(DDEN + rows)
    state = bh * (NC + 1) + c
    n0 = tl.load(Ns + state * DQK + offs_k, mask=mk, other=0.0)
    m0 = tl.load(Ms + state)
    m1 = tl.load(Ms + state + 1)
    dn1 = tl.load(dNs + (state + 1) * DQK + offs_k, mask=mk, other=0.0)

    # recompute the forward quantities of this chunk
    causal = offs_l[:, None] >= offs_l[None, :]
    D = tl.where(causal, F[:, None] - F[None, :] + ig[None, :], float("-inf"))
    W = tl.exp(D - m_t[:, None])
    a = tl.exp(F + m0 - m_t)
    qk = tl.dot(q, tl.trans(k), input_precision=PREC)  # (L, L)
    scores = qk * W
    w = tl.exp(F_end - F + ig - m1)  # weight of each step in the state after the chunk

    # outputs: num = scores v + a q C0, den = rowsum(scores) + a q.n0; walk DV in blocks
    dS = tl.zeros([L, L], tl.float32) + dden[:, None]
    dq_state = tl.zeros([L, BK], tl.float32)  # dnum C0^T
    dk_state = tl.zeros([L, BK], tl.float32)  # v dC1^T
    carry_num = tl.zeros([L], tl.float32)  # rowsum(dnum * q C0)
    logw_num = tl.zeros([L], tl.float32)  # rowsum(k dC1 * v)
    decay_sum = tl.sum(tl.zeros([L], tl.float32), 0)  # sum(C0 * dC1)
    for vb in range(0, DV, BV):
        offs_v = vb + tl.arange(0, BV)
        mv = offs_v < DV
        mkv = mk[:, None] & mv[None, :]
        v = tl.load(V + rows[:, None] * DV + offs_v[None, :], mask=mv[None, :], other=0.0)
        vf = v.to(tl.float32)
        dnum = tl.load(DNUM + rows[:, None] * DV + offs_v[None, :], mask=mv[None, :],
                       other=0.0)
        C0 = tl.load(Cs + state * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], mask=mkv,
                     other=0.0)
        dC1 = tl.load(dCs + (state + 1) * DQK * DV + offs_k[:, None] * DV + offs_v[None, :],
                      mask=mkv, other=0.0)
        dS += tl.dot(dnum, tl.trans(vf), input_precision=PREC)
        dq_state += tl.dot(dnum, tl.trans(C0), input_precision=PREC)
        dk_state += tl.dot(vf, tl.trans(dC1), input_precision=PREC)
        kdC1 = tl.dot(kf, dC1, input_precision=PREC)  # (L, BV)
        dv = tl.dot(tl.trans(scores), dnum, input_precision=PREC) + w[:, None] * kdC1
        tl.store(dV + rows[:, None] * DV + offs_v[None, :], dv, mask=mv[None, :])
        carry_num += tl.sum(dnum * tl.dot(qf, C0, input_precision=PREC), 1)
        logw_num += tl.sum(kdC1 * vf, 1)
        decay_sum += tl.sum(tl.sum(C0 * dC1, 1), 0)

    dSW = dS * W
    dq = tl.dot(dSW, kf, input_precision=PREC) + a[:, None] * (dq_state
                                                              + dden[:, None] * n0[None, :])
    dk = tl.dot(tl.trans(dSW), qf, input_precision=PREC) + w[:, None] * (dk_state
                                                                        + dn1[None, :])

    # gates, through the log weights (m held constant)
    dD = dSW * qk
    d_carry = a * (carry_num + dden * tl.sum(qf * n0[None, :], 1))
    d_logw = w * (logw_num + tl.sum(kf * dn1[None, :], 1))
    d_logdecay = tl.exp(F_end + m0 - m1) * (decay_sum + tl.sum(n0 * dn1, 0))
    col = tl.sum(dD, 0)
    d_F = tl.sum(dD, 1) - col + d_carry - d_logw
    d_F += tl.where(offs_l == L - 1, tl.sum(d_logw, 0) + d_logdecay, 0.0)

    tl.store(dQ + rows[:, None] * DQK + offs_k[None, :], dq, mask=mk[None, :])
    tl.store(dK + rows[:, None] * DQK + offs_k[None, :], dk, mask=mk[None, :])
    tl.store(dF + rows, d_F)
    tl.store(dI + rows, col + d_logw)
    # per-chunk sums for the stabilizer chain (see _stabilizer_grads)
    aux = (bh * NC + c) * 3
    tl.store(AUX + aux, tl.sum(d_carry, 0))
    tl.store(AUX + aux + 1, d_logdecay)
    tl.store(AUX + aux + 2, tl.sum(d_logw, 0))


@triton.jit
def _step(Q, K, V, I, LF, C, N, M, H, C_out, N_out, M_out, eps,
          DQK: tl.constexpr, DV: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr):
    bh = tl.program_id(0)
    offs_k = tl.arange(0, BK)
    offs_v = tl.arange(0, BV)
    mk = offs_k < DQK
    mv = offs_v < DV
    mkv = mk[:, None] & mv[None, :]
    q = tl.load(Q + bh * DQK + offs_k, mask=mk, other=0.0).to(tl.float32)
    k = tl.load(K + bh * DQK + offs_k, mask=mk, other=0.0).to(tl.float32)
    v = tl.load(V + bh * DV + offs_v, mask=mv, other=0.0).to(tl.float32)
    ig = tl.load(I + bh)
    lf = tl.load(LF + bh)
    m = tl.load(M + bh)
    m_new = tl.maximum(lf + m, ig)
    decay = tl.exp(lf + m - m_new)
    gain = tl.exp(ig - m_new)
    c_ = tl.load(C + bh * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], mask=mkv, other=0.0)
    c_ = decay * c_ + gain * k[:, None] * v[None, :]
    n = decay * tl.load(N + bh * DQK + offs_k, mask=mk, other=0.0) + gain * k
    num = tl.sum(q[:, None] * c_, 0)
    den = tl.sum(q * n, 0)
    h = num / (tl.maximum(tl.abs(den), tl.exp(-m_new)) + eps)
    tl.store(H + bh * DV + offs_v, h.to(H.dtype.element_ty), mask=mv)
    tl.store(C_out + bh * DQK * DV + offs_k[:, None] * DV + offs_v[None, :], c_, mask=mkv)
    tl.store(N_out + bh * DQK + offs_k, n, mask=mk)
    tl.store(M_out + bh, m_new)


def _pow2(x: int) -> int:
    return max(16, triton.next_power_of_2(x))


def _precision(dtype: torch.dtype) -> str:
    return "ieee" if dtype == torch.float32 else "tf32"


class MLSTMChunkwiseTriton(torch.autograd.Function):
    """q (pre-scaled), k (B, NH, S, DQK); v (B, NH, S, DV); i, log_f (B, NH, S) float32;
    state C (B, NH, DQK, DV), n (B, NH, DQK), m (B, NH) float32. Returns h and the
    final (C, n, m)."""

    @staticmethod
    def forward(ctx, q, k, v, i, log_f, C, n, m, eps: float, chunk_size: int):
        B, NH, S, DQK = q.shape
        DV = v.shape[-1]
        L = chunk_size
        NC = -(-S // L)
        pad = NC * L - S
        BH = B * NH
        if pad:  # padded steps carry no input (i = -inf) and do not forget (log_f = 0)
            q, k, v = (F_.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
            i = F_.pad(i, (0, pad), value=float("-inf"))
            log_f = F_.pad(log_f, (0, pad), value=0.0)
        S_pad = NC * L
        q, k, v = (x.reshape(BH, S_pad, -1).contiguous() for x in (q, k, v))
        i, log_f = (x.reshape(BH, S_pad).float().contiguous() for x in (i, log_f))
        C, n, m = (x.reshape(BH, *x.shape[2:]).float().contiguous() for x in (C, n, m))
        f32 = dict(device=q.device, dtype=torch.float32)
        Cs = torch.empty(BH, NC + 1, DQK, DV, **f32)
        Ns = torch.empty(BH, NC + 1, DQK, **f32)
        Ms = torch.empty(BH, NC + 1, **f32)
        BK, BV = _pow2(DQK), _pow2(DV)
        BV_state = min(BV, 64)  # DV blocks of the state pass: more programs in flight
        prec = _precision(v.dtype)
        _fw_states[(BH, triton.cdiv(DV, BV_state))](
            k, v, i, log_f, C, n, m, Cs, Ns, Ms, NC, S_pad, DQK=DQK, DV=DV, L=L, BK=BK,
            BV=BV_state, PREC=prec)
        h = torch.empty(BH, S_pad, DV, device=q.device, dtype=v.dtype)
        Mt = torch.empty(BH, S_pad, **f32)
        Den = torch.empty(BH, S_pad, **f32)
        _fw_outputs[(BH, NC)](q, k, v, i, log_f, Cs, Ns, Ms, h, Mt, Den, NC, S_pad, eps,
                              DQK=DQK, DV=DV, L=L, BK=BK, BV=BV, PREC=prec, num_warps=8)
        ctx.save_for_backward(q, k, v, i, log_f, Cs, Ns, Ms, Mt, Den, h)
        ctx.meta = (B, NH, S, L, NC, eps, BK, BV, BV_state, prec)
        final = (Cs[:, NC].reshape(B, NH, DQK, DV), Ns[:, NC].reshape(B, NH, DQK),
                 Ms[:, NC].reshape(B, NH))
        return h.reshape(B, NH, S_pad, DV)[:, :, :S], *final

    @staticmethod
    def backward(ctx, dh, dC_last, dn_last, _dm_last):
        q, k, v, i, log_f, Cs, Ns, Ms, Mt, Den, h = ctx.saved_tensors
        B, NH, S, L, NC, eps, BK, BV, BV_state, prec = ctx.meta
        BH, S_pad, DQK = q.shape
        DV = v.shape[-1]
        g = torch.zeros(BH, S_pad, DV, device=q.device, dtype=torch.float32)
        if dh is not None:
            g.view(B, NH, S_pad, DV)[:, :, :S] = dh
        # readout h = num / Z, Z = max(|den|, exp(-m)) + eps: gradients of num and den
        floor = torch.exp(-Mt)
        Z = torch.maximum(Den.abs(), floor) + eps
        dnum = (g / Z[..., None]).contiguous()
        dden = (-(g * h.float()).sum(-1) / Z * torch.sign(Den) * (Den.abs() > floor)).contiguous()
        zeros = torch.zeros
        dC_last = (zeros(BH, DQK, DV, device=q.device) if dC_last is None
                   else dC_last.reshape(BH, DQK, DV).float().contiguous())
        dn_last = (zeros(BH, DQK, device=q.device) if dn_last is None
                   else dn_last.reshape(BH, DQK).float().contiguous())
        dCs = torch.empty_like(Cs)
        dNs = torch.empty_like(Ns)
        _bw_states[(BH, triton.cdiv(DV, BV_state))](
            q, log_f, Ms, Mt, dnum, dden, dC_last, dn_last, dCs, dNs, NC, S_pad, DQK=DQK, DV=DV,
            L=L, BK=BK, BV=BV_state, PREC=prec)
        aux = torch.empty(BH, NC, 3, device=q.device, dtype=torch.float32)
        dq = torch.empty(BH, S_pad, DQK, device=q.device, dtype=torch.float32)
        dk = torch.empty_like(dq)
        dv = torch.empty(BH, S_pad, DV, device=q.device, dtype=torch.float32)
        dF = torch.empty(BH, S_pad, device=q.device, dtype=torch.float32)
        di = torch.empty_like(dF)
        _bw_grads[(BH, NC)](q, k, v, i, log_f, Cs, Ns, Ms, Mt, dnum, dden, dCs, dNs, dq, dk, dv,
                            dF, di, aux, NC, S_pad, DQK=DQK, DV=DV, L=L, BK=BK,
                            BV=min(BV, 32), PREC=prec, num_warps=8, num_stages=1)
        d_m_last = (torch.zeros(BH, device=q.device) if _dm_last is None
                    else _dm_last.reshape(BH).float())
        dm0 = _stabilizer_grads(i.view(BH, NC, L), log_f.view(BH, NC, L), Ms, aux, d_m_last,
                                dF.view(BH, NC, L), di.view(BH, NC, L))
        # F is the within-chunk cumulative sum of log_f: its gradient sums backwards
        dlog_f = dF.view(BH, NC, L).flip(-1).cumsum(-1).flip(-1).reshape(BH, S_pad)

        def out(x, dtype):
            return x.view(B, NH, S_pad, *x.shape[2:])[:, :, :S].to(dtype)

        return (out(dq, q.dtype), out(dk, k.dtype), out(dv, v.dtype), out(di, torch.float32),
                out(dlog_f, torch.float32), dCs[:, 0].reshape(B, NH, DQK, DV),
                dNs[:, 0].reshape(B, NH, DQK), dm0.reshape(B, NH), None, None)


def _stabilizer_grads(i, log_f, Ms, aux, d_m_last, dF, di):
    """Add the gradient that flows through the chunk stabilizers m_c to dF and di (in
    place) and return the gradient of the entering m. i, log_f, dF, di: (BH, NC, L);
    Ms (BH, NC + 1); aux (BH, NC, 3) per-chunk sums from ``_bw_grads``; d_m_last (BH,).

    m_{c+1} = max(F_end + m_c, max_s log_w_s) and every quantity derived from m is
    scaled by exp(-m). With G_c the gradient w.r.t. m_c (the state C_c, n_c held in
    stabilized units): G_c = S1_c + S2_c + b_c (G_{c+1} - S2_c - S3_c), b_c = 1 where
    the forget branch won; a linear scan with 0/1 coefficients, solved with segment sums.
    """
    BH, NC, _ = i.shape
    S1, S2, S3 = aux.unbind(-1)
    F = log_f.cumsum(-1)
    F_end = F[..., -1]
    m_add, s_star = (F_end.unsqueeze(-1) - F + i).max(-1)
    won = (F_end + Ms[:, :NC]) >= m_add  # (BH, NC)
    b = won.float()
    a = torch.cat([S1 + S2 - b * (S2 + S3), d_m_last[:, None]], dim=1)  # (BH, NC + 1)
    # G_c = sum of a_j from c up to the first j >= c with b_j = 0 (b_NC = 0: the end)
    stops = torch.cat([~won, torch.ones_like(won[:, :1])], dim=1)
    index = torch.arange(NC + 1, device=i.device).expand(BH, -1)
    first_stop = torch.where(stops, index, NC).flip(-1).cummin(-1).values.flip(-1)
    suffix = torch.cat([a.flip(-1).cumsum(-1).flip(-1), a.new_zeros(BH, 1)], dim=1)
    G = suffix[:, :NC + 1] - suffix.gather(1, first_stop + 1)
    T = G[:, 1:] - S2 - S3  # gradient w.r.t. m_{c+1} through the max, (BH, NC)
    dF[..., -1] += T  # F_end is in both branches of the max
    lost = torch.where(won, 0.0, T).unsqueeze(-1)  # the input branch: log_w at s*
    di.scatter_add_(-1, s_star.unsqueeze(-1), lost)
    dF.scatter_add_(-1, s_star.unsqueeze(-1), -lost)
    return G[:, 0]


def mlstm_chunkwise_triton(q, k, v, i, log_f, C, n, m, eps: float, chunk_size: int):
    """Same contract as :func:`.chunkwise.mlstm_chunkwise`; ``chunk_size`` a power of two
    >= 16 (``tl.dot`` tiles)."""
    h, C, n, m = MLSTMChunkwiseTriton.apply(q, k, v, i, log_f, C, n, m, eps, chunk_size)
    return h, (C, n, m)


def mlstm_step_triton(q, k, v, i, log_f, C, n, m, eps: float):
    """One step (no autograd: inference). q, k (B, NH, DQK); v (B, NH, DV); i, log_f, m
    (B, NH); C (B, NH, DQK, DV); n (B, NH, DQK). Returns h and the new state."""
    B, NH, DQK = q.shape
    DV = v.shape[-1]
    args = [x.contiguous() for x in (q, k, v)]
    gates = [x.float().contiguous() for x in (i, log_f, C, n, m)]
    h = torch.empty(B, NH, DV, device=q.device, dtype=v.dtype)
    C_out, n_out, m_out = (torch.empty_like(x) for x in gates[2:])
    _step[(B * NH,)](*args, *gates, h, C_out, n_out, m_out, eps, DQK=DQK, DV=DV,
                     BK=_pow2(DQK), BV=_pow2(DV))
    return h, (C_out, n_out, m_out)
