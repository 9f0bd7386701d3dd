"""sLSTM fused recurrence in Triton: forward and backward kernels.

The same math as :mod:`.recurrent` (read that first). One program per (head,
block of BB batch rows) loops over time with that head's recurrent weights R
(4, DH, DH) loaded once and kept on chip; each step fuses the recurrent matmul
(``tl.dot`` of h_{t-1} (BB, DH) with each gate's R) with the gate math and the
stabilizer. The forward saves pre-activations and states per step; the backward
kernel replays the gate math in reverse and carries dh, dc, dn, dm on chip. The
recurrent-weight gradient is one batched matmul over all steps afterwards.

Layout: gates_x (B, S, 4, NH, DH) as given; states (S + 1, B, NH, DH) float32,
index 0 the entering state. Gate order (i, f, z, o).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _log_forget(f, EXP_FORGET: tl.constexpr):
    if EXP_FORGET:
        return f
    return tl.minimum(f, 0.0) - tl.log(1.0 + tl.exp(-tl.abs(f)))  # logsigmoid, stable


@triton.jit
def _fw(GX, R, H, C, N, M, PRE, B, S, NH: tl.constexpr, DH: tl.constexpr, BB: tl.constexpr,
        BD: tl.constexpr, EXP_FORGET: tl.constexpr, PREC: tl.constexpr):
    head = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)
    dims = tl.arange(0, BD)
    mask = (rows < B)[:, None] & (dims < DH)[None, :]
    mask_r = (dims < DH)[:, None] & (dims < DH)[None, :]
    r_offs = head * DH * DH + dims[:, None] * DH + dims[None, :]
    R_i = tl.load(R + 0 * NH * DH * DH + r_offs, mask=mask_r, other=0.0)
    R_f = tl.load(R + 1 * NH * DH * DH + r_offs, mask=mask_r, other=0.0)
    R_z = tl.load(R + 2 * NH * DH * DH + r_offs, mask=mask_r, other=0.0)
    R_o = tl.load(R + 3 * NH * DH * DH + r_offs, mask=mask_r, other=0.0)
    state = rows[:, None] * NH * DH + head * DH + dims[None, :]  # in a (B, NH, DH) slab
    h = tl.load(H + state, mask=mask, other=0.0)
    c = tl.load(C + state, mask=mask, other=0.0)
    n = tl.load(N + state, mask=mask, other=0.0)
    m = tl.load(M + state, mask=mask, other=0.0)
    slab = B * NH * DH
    for t in range(S):
        gx = GX + ((rows[:, None] * S + t) * 4 * NH + head) * DH + dims[None, :]
        hr = h.to(R_i.dtype)
        i_pre = tl.load(gx, mask=mask, other=0.0) + tl.dot(hr, R_i, input_precision=PREC)
        f_pre = tl.load(gx + NH * DH, mask=mask, other=0.0) + tl.dot(hr, R_f,
                                                                     input_precision=PREC)
        z_pre = tl.load(gx + 2 * NH * DH, mask=mask, other=0.0) + tl.dot(hr, R_z,
                                                                         input_precision=PREC)
        o_pre = tl.load(gx + 3 * NH * DH, mask=mask, other=0.0) + tl.dot(hr, R_o,
                                                                         input_precision=PREC)
        log_f = _log_forget(f_pre, EXP_FORGET)
        m_new = tl.maximum(log_f + m, i_pre)
        gain = tl.exp(i_pre - m_new)
        decay = tl.exp(log_f + m - m_new)
        c = decay * c + gain * (2.0 * tl.sigmoid(2.0 * z_pre) - 1.0)  # tanh
        n = decay * n + gain
        h = tl.sigmoid(o_pre) * c / n
        m = m_new
        pre = PRE + ((t * B + rows[:, None]) * 4 * NH + head) * DH + dims[None, :]
        tl.store(pre, i_pre, mask=mask)
        tl.store(pre + NH * DH, f_pre, mask=mask)
        tl.store(pre + 2 * NH * DH, z_pre, mask=mask)
        tl.store(pre + 3 * NH * DH, o_pre, mask=mask)
        after = (t + 1) * slab + state
        tl.store(H + after, h, mask=mask)
        tl.store(C + after, c, mask=mask)
        tl.store(N + after, n, mask=mask)
        tl.store(M + after, m, mask=mask)


@triton.jit
def _bw(R, H, C, N, M, PRE, DOUT, DH_LAST, DC_LAST, DN_LAST, DM_LAST, DPRE, DH0, DC0, DN0, DM0,
        B, S, NH: tl.constexpr, DH: tl.constexpr, BB: tl.constexpr, BD: tl.constexpr,
        EXP_FORGET: tl.constexpr, PREC: tl.constexpr):
    head = tl.program_id(0)
    rows = tl.program_id(1) * BB + tl.arange(0, BB)
    dims = tl.arange(0, BD)
    mask = (rows < B)[:, None] & (dims < DH)[None, :]
    mask_r = (dims < DH)[:, None] & (dims < DH)[None, :]
    # transposed recurrent weights: dh_{t-1} = sum_g d_pre_g @ R_g^T
    rt_offs = head * DH * DH + dims[None, :] * DH + dims[:, None]
    Rt_i = tl.load(R + 0 * NH * DH * DH + rt_offs, mask=mask_r, other=0.0)
    Rt_f = tl.load(R + 1 * NH * DH * DH + rt_offs, mask=mask_r, other=0.0)
    Rt_z = tl.load(R + 2 * NH * DH * DH + rt_offs, mask=mask_r, other=0.0)
    Rt_o = tl.load(R + 3 * NH * DH * DH + rt_offs, mask=mask_r, other=0.0)
    state = rows[:, None] * NH * DH + head * DH + dims[None, :]
    slab = B * NH * DH
    dh = tl.load(DH_LAST + state, mask=mask, other=0.0)
    dc = tl.load(DC_LAST + state, mask=mask, other=0.0)
    dn = tl.load(DN_LAST + state, mask=mask, other=0.0)
    dm = tl.load(DM_LAST + state, mask=mask, other=0.0)
    for j in range(S):
        t = S - 1 - j
        pre = PRE + ((t * B + rows[:, None]) * 4 * NH + head) * DH + dims[None, :]
        i_pre = tl.load(pre, mask=mask, other=0.0)
        f_pre = tl.load(pre + NH * DH, mask=mask, other=0.0)
        z = 2.0 * tl.sigmoid(2.0 * tl.load(pre + 2 * NH * DH, mask=mask, other=0.0)) - 1.0
        o = tl.sigmoid(tl.load(pre + 3 * NH * DH, mask=mask, other=0.0))
        before = t * slab + state
        m_prev = tl.load(M + before, mask=mask, other=0.0)
        c_prev = tl.load(C + before, mask=mask, other=0.0)
        n_prev = tl.load(N + before, mask=mask, other=0.0)
        c = tl.load(C + before + slab, mask=mask, other=0.0)
        n = tl.load(N + before + slab, mask=mask, other=1.0)
        log_f = _log_forget(f_pre, EXP_FORGET)
        m = tl.maximum(log_f + m_prev, i_pre)
        gain = tl.exp(i_pre - m)
        decay = tl.exp(log_f + m_prev - m)

        dh += tl.load(DOUT + ((rows[:, None] * S + t) * NH + head) * DH + dims[None, :],
                      mask=mask, other=0.0)
        h_bar = c / n
        d_o = dh * h_bar * o * (1.0 - o)
        dc += dh * o / n
        dn -= dh * o * h_bar / n
        d_z = dc * gain * (1.0 - z * z)
        g_gain = (dc * z + dn) * gain
        g_decay = (dc * c_prev + dn * n_prev) * decay
        dm = dm - g_gain - g_decay
        forget_won = (log_f + m_prev) >= i_pre
        d_via_f = g_decay + tl.where(forget_won, dm, 0.0)
        d_i = g_gain + tl.where(forget_won, 0.0, dm)
        if EXP_FORGET:
            d_f = d_via_f
        else:
            d_f = d_via_f * tl.sigmoid(-f_pre)
        dm = d_via_f
        dc = dc * decay
        dn = dn * decay
        dpre = DPRE + ((t * B + rows[:, None]) * 4 * NH + head) * DH + dims[None, :]
        tl.store(dpre, d_i, mask=mask)
        tl.store(dpre + NH * DH, d_f, mask=mask)
        tl.store(dpre + 2 * NH * DH, d_z, mask=mask)
        tl.store(dpre + 3 * NH * DH, d_o, mask=mask)
        dh = tl.dot(d_i.to(Rt_i.dtype), Rt_i, input_precision=PREC)
        dh += tl.dot(d_f.to(Rt_f.dtype), Rt_f, input_precision=PREC)
        dh += tl.dot(d_z.to(Rt_z.dtype), Rt_z, input_precision=PREC)
        dh += tl.dot(d_o.to(Rt_o.dtype), Rt_o, input_precision=PREC)
    tl.store(DH0 + state, dh, mask=mask)
    tl.store(DC0 + state, dc, mask=mask)
    tl.store(DN0 + state, dn, mask=mask)
    tl.store(DM0 + state, dm, mask=mask)


def _blocks(B: int, DH: int) -> tuple[int, int]:
    return 16, max(16, triton.next_power_of_2(DH))  # BB rows per program (tl.dot >= 16)


class SLSTMTriton(torch.autograd.Function):
    """Inputs: gates_x (B, S, 4, NH, DH), R (4, NH, DH, DH), h0, c0, n0, m0 (B, NH, DH)
    float32. Returns h (B, S, NH, DH) and the final (h, c, n, m)."""

    @staticmethod
    def forward(ctx, gates_x, R, h0, c0, n0, m0, exp_forget: bool):
        B, S, _, NH, DH = gates_x.shape
        BB, BD = _blocks(B, DH)
        gx = gates_x.contiguous()
        Rc = R.contiguous()
        f32 = dict(device=gx.device, dtype=torch.float32)
        H, C, N, M = (torch.empty(S + 1, B, NH, DH, **f32) for _ in range(4))
        for buf, first in ((H, h0), (C, c0), (N, n0), (M, m0)):
            buf[0] = first
        pre = torch.empty(S, B, 4, NH, DH, **f32)
        prec = "ieee" if Rc.dtype == torch.float32 else "tf32"
        grid = (NH, triton.cdiv(B, BB))
        _fw[grid](gx, Rc, H, C, N, M, pre, B, S, NH=NH, DH=DH, BB=BB, BD=BD,
                  EXP_FORGET=exp_forget, PREC=prec, num_warps=4)
        ctx.save_for_backward(Rc, H, C, N, M, pre)
        ctx.exp_forget, ctx.prec, ctx.dtype = exp_forget, prec, gates_x.dtype
        return H[1:].permute(1, 0, 2, 3).to(gates_x.dtype), H[S], C[S], N[S], M[S]

    @staticmethod
    def backward(ctx, d_h_seq, d_hT, d_cT, d_nT, d_mT):
        Rc, H, C, N, M, pre = ctx.saved_tensors
        S1, B, NH, DH = H.shape
        S = S1 - 1
        BB, BD = _blocks(B, DH)

        def grad(g, shape):
            return torch.zeros(shape, device=H.device) if g is None else g.float().contiguous()

        d_out = grad(d_h_seq, (B, S, NH, DH))
        last = [grad(g, (B, NH, DH)) for g in (d_hT, d_cT, d_nT, d_mT)]
        d_pre = torch.empty_like(pre)
        first = [torch.empty(B, NH, DH, device=H.device) for _ in range(4)]
        grid = (NH, triton.cdiv(B, BB))
        _bw[grid](Rc, H, C, N, M, pre, d_out, *last, d_pre, *first, B, S, NH=NH, DH=DH, BB=BB,
                  BD=BD, EXP_FORGET=ctx.exp_forget, PREC=ctx.prec, num_warps=4)
        # dR[g, k, d, e] = sum over steps and batch of h_{t-1}[b, k, d] * d_pre[t, b, g, k, e]
        d_R = torch.einsum("tbkd,tbgke->gkde", H[:-1], d_pre)
        d_gates_x = d_pre.permute(1, 0, 2, 3, 4).to(ctx.dtype)
        return (d_gates_x, d_R.to(Rc.dtype), *first, None)


def slstm_triton(gates_x, R, h0, c0, n0, m0, exp_forget: bool):
    """Same contract as the PyTorch path's ``SLSTMFunction.apply``."""
    return SLSTMTriton.apply(gates_x, R, h0, c0, n0, m0, exp_forget)
