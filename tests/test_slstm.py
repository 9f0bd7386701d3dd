"""sLSTM cell against a plain per-step loop written from the equations."""

import pytest
import torch
import torch.nn.functional as F

from xlstm_ts.cells import slstm


def plain_loop(gates_x, R, state=None, forget="sigmoid"):
    B, S, _, NH, DH = gates_x.shape
    if state is None:
        h = gates_x.new_zeros(B, NH, DH)
        c, n, m = h, h, torch.full_like(h, float("-inf"))
    else:
        h, c, n, m = state
    hs = []
    for t in range(S):
        pre = gates_x[:, t] + torch.einsum("bkd,gkde->bgke", h, R)
        i_, f_, z_, o_ = pre.unbind(1)
        log_f = f_ if forget == "exp" else F.logsigmoid(f_)
        m_new = torch.maximum(log_f + m, i_)
        i_s, f_s = torch.exp(i_ - m_new), torch.exp(log_f + m - m_new)
        c = f_s * c + i_s * torch.tanh(z_)
        n = f_s * n + i_s
        h = torch.sigmoid(o_) * c / n
        m = m_new
        hs.append(h)
    return torch.stack(hs, dim=1), (h, c, n, m)


def make_inputs(B, S, NH, DH, dtype=torch.float64, scale=1.0):
    gates_x = (scale * torch.randn(B, S, 4, NH, DH, dtype=dtype)).requires_grad_()
    R = (0.5 * torch.randn(4, NH, DH, DH, dtype=dtype) / DH**0.5).requires_grad_()
    return gates_x, R


def random_state(B, NH, DH, dtype=torch.float64):
    h = torch.randn(B, NH, DH, dtype=dtype).tanh()
    c = torch.randn(B, NH, DH, dtype=dtype)
    n = torch.rand(B, NH, DH, dtype=dtype) + 1.0
    m = torch.randn(B, NH, DH, dtype=dtype)
    return tuple(t.requires_grad_() for t in (h, c, n, m))


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
@pytest.mark.parametrize("with_state", [False, True], ids=["fresh", "carried"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("B,S,NH,DH", [(2, 23, 3, 4), (1, 1, 1, 8), (3, 40, 2, 5)])
def test_matches_plain_loop_forward_and_gradients(B, S, NH, DH, dtype, with_state, forget):
    tol = 1e-8 if dtype == torch.float64 else 1e-4
    gates_x, R = make_inputs(B, S, NH, DH, dtype)
    state = random_state(B, NH, DH, dtype) if with_state else None
    h_ref, state_ref = plain_loop(gates_x, R, state, forget)
    h, state_out = slstm(gates_x, R, state=state, forget=forget, return_state=True)
    torch.testing.assert_close(h, h_ref, atol=tol, rtol=tol)
    for name, a, b in zip("hcnm", state_out, state_ref, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=f"state {name}")

    wanted = [gates_x, R, *(state or ())]
    weight = torch.randn_like(h)

    def loss(h, st):
        return (h * weight).sum() + st[0].sum() + st[1].sum() + 0.3 * st[2].sum() + st[3].sum()

    grads_ref = torch.autograd.grad(loss(h_ref, state_ref), wanted)
    grads = torch.autograd.grad(loss(h, state_out), wanted)
    names = ["gates_x", "R", "h0", "c0", "n0", "m0"]
    for name, g, g_ref in zip(names, grads, grads_ref, strict=False):
        torch.testing.assert_close(g, g_ref, atol=tol, rtol=tol, msg=f"d{name}")


def test_gradcheck():
    gates_x, R = make_inputs(2, 4, 2, 3)
    state = random_state(2, 2, 3)

    def fn(gx, R, h0, c0, n0, m0):
        h, st = slstm(gx, R, state=(h0, c0, n0, m0), return_state=True)
        return h, *st

    assert torch.autograd.gradcheck(fn, (gates_x, R, *state))


def test_state_continuation_equals_one_pass():
    gates_x, R = make_inputs(2, 30, 2, 4)
    h_full, state_full = slstm(gates_x, R, return_state=True)
    h1, state1 = slstm(gates_x[:, :11], R, return_state=True)
    h2, state2 = slstm(gates_x[:, 11:], R, state=state1, return_state=True)
    torch.testing.assert_close(torch.cat([h1, h2], 1), h_full, atol=1e-12, rtol=1e-12)
    for a, b in zip(state2, state_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_inference_steps_equal_one_pass(forget):
    """Single steps without autograd (the streamed path, no autograd node) continue a
    carried state exactly as the sequence pass does, from a fresh or a carried state."""
    gates_x, R = make_inputs(2, 12, 3, 4)
    with torch.inference_mode():
        h_full, state_full = slstm(gates_x, R, forget=forget, return_state=True)
        ref, _ = plain_loop(gates_x, R, forget=forget)
        state, hs = None, []
        for t in range(12):
            h, state = slstm(gates_x[:, t:t + 1], R, state=state, forget=forget,
                             return_state=True)
            hs.append(h)
    torch.testing.assert_close(torch.cat(hs, 1), h_full, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(torch.cat(hs, 1), ref, atol=1e-8, rtol=1e-8)
    for a, b in zip(state, state_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_extreme_gates_stay_finite(forget):
    B, S, NH, DH = 1, 16384, 1, 2
    gates_x = (torch.rand(B, S, 4, NH, DH) * 100 - 50).requires_grad_()
    R = torch.randn(4, NH, DH, DH).requires_grad_()
    h = slstm(gates_x, R, forget=forget)
    assert torch.isfinite(h).all()
    grads = torch.autograd.grad(h.square().sum(), (gates_x, R))
    assert all(torch.isfinite(g).all() for g in grads)
    # and right, not only finite: the float64 plain loop over the first 512 steps
    first = gates_x[:, :512].detach()
    ref, _ = plain_loop(first.double(), R.detach().double(), forget=forget)
    torch.testing.assert_close(slstm(first, R.detach(), forget=forget).double(), ref,
                               atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_keep_float32_state(dtype):
    gates_x, R = make_inputs(2, 20, 2, 8, torch.float32)
    h, state = slstm(gates_x.detach().to(dtype), R.detach().to(dtype), return_state=True)
    assert h.dtype == dtype and all(s.dtype == torch.float32 for s in state)
    h32 = slstm(gates_x.detach().to(dtype).float(), R.detach().to(dtype).float())
    torch.testing.assert_close(h.float(), h32, atol=1e-2, rtol=1e-2)


def test_bad_arguments_raise_clear_errors():
    gates_x, R = (t.detach() for t in make_inputs(2, 5, 2, 4))
    with pytest.raises(ValueError, match=r"4 gates"):
        slstm(gates_x[:, :, :3], R)
    with pytest.raises(ValueError, match=r"R must have shape"):
        slstm(gates_x, R[:, :1])
    with pytest.raises(ValueError, match=r"forget must be one of"):
        slstm(gates_x, R, forget="tanh")
    with pytest.raises(ValueError, match=r"state c must have shape"):
        bad = (torch.zeros(2, 2, 4), torch.zeros(2, 2, 3), torch.zeros(2, 2, 4),
               torch.zeros(2, 2, 4))
        slstm(gates_x, R, state=bad)
    with pytest.raises(TypeError, match=r"gates_x must be a torch.Tensor"):
        slstm(gates_x.numpy(), R)
