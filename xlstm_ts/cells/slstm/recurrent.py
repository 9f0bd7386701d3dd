"""sLSTM recurrence with a hand-written backward pass (CPU/PyTorch path).

Autograd through a Python time loop records ~20 tiny nodes per step and walks
them back one by one; here the forward loop saves the activated gates and the
states, and the backward loop runs the gate math's derivatives in reverse with a
handful of fused elementwise ops and one batched matmul per step. The
recurrent-weight gradient is four matmuls over all steps at the end.

Layout inside the sequence loops is time-major and gate-major: (S, 4, NH, B, DH),
so that each gate of a step is one contiguous block and each step's recurrent
matmul is a single ``baddbmm`` over the 4 * NH (gate, head) pairs (head-batched
(NH, B, 4*DH) with gate slices of the last dimension ran the forward step 1.4x
slower). The single inference step (:func:`slstm_step`) runs the same step function.

Notation: B batch, S steps, NH heads, DH head dim; gate order (i, f, z, o).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_


def _recurrent_input(gx: torch.Tensor, h: torch.Tensor, R_all: torch.Tensor,
                     out: torch.Tensor | None = None) -> torch.Tensor:
    """Gate-major pre-activations (4, NH, B, DH): the input part ``gx`` (4 * NH, B, DH)
    plus ``h`` (NH, B, DH) through every gate's recurrent weights ``R_all`` (4 * NH,
    DH, DH), one ``baddbmm`` over the (gate, head) pairs."""
    NH, B, DH = h.shape
    h_all = h.expand(4, NH, B, DH).reshape(4 * NH, B, DH)
    return torch.baddbmm(gx, h_all, R_all, out=out).view(4, NH, B, DH)


def slstm_step(gates_x: torch.Tensor, R: torch.Tensor, h, c, n, m, exp_forget: bool):
    """One step without autograd bookkeeping (inference; streamed updates): gates_x
    (B, 4, NH, DH), R (4, NH, DH, DH), state (B, NH, DH) each -> the new (h, c, n, m),
    each (B, NH, DH). The arithmetic of a step of :class:`SLSTMFunction` (:func:`_step`)."""
    B, _, NH, DH = gates_x.shape
    gx = gates_x.permute(1, 2, 0, 3).reshape(4 * NH, B, DH)
    pre = _recurrent_input(gx, h.transpose(0, 1), R.reshape(4 * NH, DH, DH))
    new = tuple(gx.new_empty(NH, B, DH) for _ in range(4))
    _step(pre, c.transpose(0, 1), n.transpose(0, 1), m.transpose(0, 1), exp_forget,
          out=(*new, gx.new_empty(4, NH, B, DH), None, None))
    return tuple(s.transpose(0, 1) for s in new)


def _step(pre: torch.Tensor, c_prev, n_prev, m_prev, exp_forget: bool, out: tuple):
    """One sLSTM step (:class:`SLSTMFunction`'s and :func:`slstm_step`'s) from
    gate-major pre-activations (4, NH, B, DH). Writes into ``out`` = (h, c, n, m,
    acts, won, d_log_f): the new h, c, n, m (NH, B, DH); acts (4, NH, B, DH), the
    activated gates i', f', z, o; won (NH, B, DH), whether the forget branch set m;
    d_log_f (NH, B, DH), d log_f / d f_pre (None for the exponential forget gate).
    won and d_log_f are None where no gradient is wanted."""
    h, c, n, m, acts, won, d_log_f = out
    i_pre, f_pre, z_pre, o_pre = pre.unbind(0)
    gain, decay, z, o = acts.unbind(0)
    log_f = f_pre if exp_forget else F_.logsigmoid(f_pre)
    forget = log_f + m_prev
    if won is not None:
        torch.ge(forget, i_pre, out=won)
    torch.maximum(forget, i_pre, out=m)
    torch.exp(i_pre - m, out=gain)
    torch.exp(forget - m, out=decay)
    torch.tanh(z_pre, out=z)
    torch.sigmoid(o_pre, out=o)
    if d_log_f is not None:  # d logsigmoid(f) / df = sigmoid(-f)
        torch.sigmoid(-f_pre, out=d_log_f)
    torch.addcmul(decay * c_prev, gain, z, out=c)
    torch.addcmul(gain, decay, n_prev, out=n)
    torch.mul(o, c / n, out=h)


@torch.no_grad()
def slstm_inference(gates_x: torch.Tensor, R: torch.Tensor, h0, c0, n0, m0, exp_forget: bool):
    """The sequence without autograd (forecasting): gates_x (B, S, 4, NH, DH), R (4, NH,
    DH, DH), state (B, NH, DH) each -> h (B, S, NH, DH) and the final (h, c, n, m), by
    :func:`slstm_inference_laid`."""
    B, S, _, NH, DH = gates_x.shape
    gx = gates_x.permute(1, 3, 0, 2, 4).reshape(S, NH, B, 4 * DH)
    R_cat = R.permute(1, 2, 0, 3).reshape(NH, DH, 4 * DH)
    state = (t.transpose(0, 1).contiguous() for t in (h0, c0, n0, m0))
    out, final = slstm_inference_laid(gx, R_cat, *state, exp_forget)
    return out.permute(2, 0, 1, 3), tuple(t.transpose(0, 1) for t in final)


@torch.no_grad()
def slstm_inference_laid(gx: torch.Tensor, R_cat: torch.Tensor, h, c, n, m,
                         exp_forget: bool = False):
    """The arithmetic of :func:`_step` in a lean loop, nothing kept for a backward pass,
    on the layout that makes a step one ``baddbmm``: pre-activations gx (S, NH, B,
    4 * DH) (gates (i, f, z, o) side by side), recurrent weights R_cat (NH, DH, 4 * DH),
    state h, c, n, m (NH, B, DH) each (m = -inf: an empty memory). Returns h (S, NH, B,
    DH) and the final (h, c, n, m)."""
    S, NH, B, _ = gx.shape
    DH = R_cat.shape[1]
    out = gx.new_empty(S, NH, B, DH)
    pre = gx.new_empty(NH, B, 4 * DH)
    for t in range(S):
        torch.baddbmm(gx[t], h, R_cat, out=pre)
        i_pre, f_pre, z_pre, o_pre = pre.view(NH, B, 4, DH).unbind(2)
        forget = (f_pre if exp_forget else F_.logsigmoid(f_pre)) + m
        m = torch.maximum(forget, i_pre)
        gain, decay = torch.exp(i_pre - m), torch.exp(forget - m)
        c = torch.addcmul(decay * c, gain, torch.tanh(z_pre))
        n = torch.addcmul(gain, decay, n)
        h = torch.mul(torch.sigmoid(o_pre), c / n, out=out[t])
    return out, (h, c, n, m)


class SLSTMFunction(torch.autograd.Function):
    """Inputs: gates_x (B, S, 4, NH, DH), R (4, NH, DH, DH), h0, c0, n0, m0 (B, NH, DH).

    Inside, gates are gate-major, (S, 4, NH, B, DH): each gate of a step is one
    contiguous (NH, B, DH) block, and the recurrent input of all gates is one
    ``baddbmm`` over 4 * NH (gate, head) pairs. The forward keeps each step's
    activated gates (i', f', z, o), which branch set the stabilizer and the forget
    gate's slope, so the backward does not recompute them."""

    @staticmethod
    def forward(ctx, gates_x, R, h0, c0, n0, m0, exp_forget: bool):
        B, S, _, NH, DH = gates_x.shape
        gx = gates_x.permute(1, 2, 3, 0, 4).reshape(S, 4 * NH, B, DH)
        R_all = R.reshape(4 * NH, DH, DH)

        # Index 0 holds the entering state; index t + 1 the state after step t.
        def buffer(initial):
            out = gx.new_empty(S + 1, NH, B, DH)
            out[0] = initial.transpose(0, 1)
            return out

        H, C, N, M = buffer(h0), buffer(c0), buffer(n0), buffer(m0)
        acts = gx.new_empty(S, 4, NH, B, DH)
        grads = any(ctx.needs_input_grad)  # else (predict, encode) keep only what h needs
        won = torch.empty(S, NH, B, DH, dtype=torch.bool, device=gx.device) if grads else None
        d_log_f = torch.empty_like(H[1:]) if grads and not exp_forget else None
        pre = gx.new_empty(4 * NH, B, DH)
        for t in range(S):
            _step(_recurrent_input(gx[t], H[t], R_all, out=pre), C[t], N[t], M[t], exp_forget,
                  out=(H[t + 1], C[t + 1], N[t + 1], M[t + 1], acts[t],
                       None if won is None else won[t],
                       None if d_log_f is None else d_log_f[t]))

        ctx.exp_forget = exp_forget
        ctx.save_for_backward(acts, won, d_log_f, R, H, C, N)
        h_seq = H[1:].permute(2, 0, 1, 3)  # (B, S, NH, DH)
        final = (H[S].transpose(0, 1), C[S].transpose(0, 1), N[S].transpose(0, 1),
                 M[S].transpose(0, 1))
        return h_seq, *final

    @staticmethod
    def backward(ctx, d_h_seq, d_hT, d_cT, d_nT, d_mT):
        acts, won, d_log_f, R, H, C, N = ctx.saved_tensors
        S, _, NH, B, DH = acts.shape

        def init(grad):
            return H.new_zeros(NH, B, DH) if grad is None else grad.transpose(0, 1).contiguous()

        dh, dc, dn, dm = init(d_hT), init(d_cT), init(d_nT), init(d_mT)
        d_out = (d_h_seq.permute(1, 2, 0, 3) if d_h_seq is not None
                 else H.new_zeros(S, NH, B, DH))
        R_all_t = R.reshape(4 * NH, DH, DH).transpose(1, 2).contiguous()
        d_pre = torch.empty_like(acts)  # (S, 4, NH, B, DH)
        for t in range(S - 1, -1, -1):
            gain, decay, z, o = acts[t].unbind(0)
            c, n = C[t + 1], N[t + 1]
            dh = dh + d_out[t]
            h_bar = c / n
            d_i, d_f, d_z, d_o = d_pre[t].unbind(0)
            torch.mul(dh * h_bar, o * (1 - o), out=d_o)
            dc = dc + dh * o / n
            dn = dn - dh * o * h_bar / n
            torch.mul(dc * gain, 1 - z * z, out=d_z)
            g_gain = (dc * z + dn) * gain  # gradient w.r.t. (i_pre - m)
            g_decay = (dc * C[t] + dn * N[t]) * decay  # gradient w.r.t. (log_f + m_prev - m)
            dm = dm - g_gain - g_decay
            # m = max(log_f + m_prev, i_pre): route dm to the branch that won.
            d_via_f = g_decay + torch.where(won[t], dm, 0.0)
            torch.add(g_gain, torch.where(won[t], 0.0, dm), out=d_i)
            if d_log_f is None:
                d_f.copy_(d_via_f)
            else:
                torch.mul(d_via_f, d_log_f[t], out=d_f)
            dm = d_via_f  # m_prev enters exactly where log_f does
            dc = dc * decay
            dn = dn * decay
            # every gate's recurrent input came from h: sum their pullbacks
            dh = torch.bmm(d_pre[t].view(4 * NH, B, DH), R_all_t).view(4, NH, B, DH).sum(0)

        # dR[g, k, d, e] = sum over steps and batch of h_{t-1}[k, d] * d_pre[g, k, e]
        h_prev = H[:-1].permute(1, 3, 0, 2).reshape(NH, DH, S * B)
        d_R = torch.stack([h_prev @ d_pre[:, g].permute(1, 0, 2, 3).reshape(NH, S * B, DH)
                           for g in range(4)])  # (4, NH, DH, DH)
        d_gates_x = d_pre.permute(3, 0, 1, 2, 4)  # (B, S, 4, NH, DH)

        def state_grad(g):
            return g.transpose(0, 1)

        return (d_gates_x, d_R, state_grad(dh), state_grad(dc), state_grad(dn), state_grad(dm),
                None)
