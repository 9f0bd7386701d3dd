"""mLSTM cell: the three forms against each other and against the textbook equations."""

import math
from pathlib import Path

import pytest
import torch

from xlstm_ts.cells import MLSTM_FORMS, mlstm, mlstm_step

TOL = {torch.float64: 1e-8, torch.float32: 1e-4}
# (B, NH, S, DQK, DV, chunk_size): odd S, S < chunk, S a multiple of chunk, DQK != DV,
# S cut into even chunks shorter than chunk_size (70 -> 2 x 35; 66 -> 5 x 14, 4 padded)
SHAPES = [
    (2, 3, 37, 8, 8, 8),
    (1, 2, 70, 8, 8, 64),
    (1, 2, 66, 4, 4, 16),
    (1, 2, 1, 4, 6, 16),
    (2, 1, 64, 16, 8, 16),
    (3, 2, 50, 5, 7, 7),
    (1, 1, 13, 4, 4, 64),
]


def make_inputs(B, NH, S, DQK, DV, dtype=torch.float64, gate_scale=1.0, f_shift=2.0):
    q, k = (torch.randn(B, NH, S, DQK, dtype=dtype) for _ in range(2))
    v = torch.randn(B, NH, S, DV, dtype=dtype)
    i = gate_scale * torch.randn(B, NH, S, dtype=dtype)
    f = gate_scale * torch.randn(B, NH, S, dtype=dtype) + f_shift
    return [t.requires_grad_() for t in (q, k, v, i, f)]


def textbook_mlstm(q, k, v, i, f):
    """Unstabilized mLSTM from the paper: C = f C + i k v^T, h = C^T q / max(|n^T q|, 1)."""
    B, NH, S, DQK = q.shape
    C = q.new_zeros(B, NH, DQK, v.shape[-1])
    n = q.new_zeros(B, NH, DQK)
    hs = []
    for t in range(S):
        f_t, i_t = torch.sigmoid(f[:, :, t]), torch.exp(i[:, :, t])
        C = f_t[..., None, None] * C + i_t[..., None, None] * torch.einsum(
            "bhd,bhe->bhde", k[:, :, t], v[:, :, t])
        n = f_t[..., None] * n + i_t[..., None] * k[:, :, t]
        qs = q[:, :, t] / math.sqrt(DQK)
        num = torch.einsum("bhde,bhd->bhe", C, qs)
        den = torch.einsum("bhd,bhd->bh", n, qs).abs().clamp_min(1.0)
        hs.append(num / den[..., None])
    return torch.stack(hs, dim=2)


def run(form, inputs, chunk_size=64, **kw):
    return mlstm(*inputs, form=form, chunk_size=chunk_size, return_state=True, **kw)


def test_recurrent_matches_unstabilized_textbook_equations():
    inputs = make_inputs(2, 2, 30, 6, 5)
    h = mlstm(*inputs, form="recurrent", eps=0.0)
    # eps = 0 makes the stabilized readout exactly the unstabilized one
    torch.testing.assert_close(h, textbook_mlstm(*inputs), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "B{}NH{}S{}QK{}V{}L{}".format(*s))
@pytest.mark.parametrize("form", ["parallel", "chunkwise"])
def test_forms_agree_forward_and_gradients(form, shape, dtype):
    *dims, chunk = shape
    inputs = make_inputs(*dims, dtype=dtype)
    h_ref, state_ref = run("recurrent", inputs)
    h, state = run(form, inputs, chunk_size=chunk)
    tol = TOL[dtype]
    torch.testing.assert_close(h, h_ref, atol=tol, rtol=tol)
    for name, a, b in zip("Cnm", state, state_ref, strict=True):
        torch.testing.assert_close(a, b, atol=tol, rtol=tol, msg=f"state {name}")

    weight = torch.randn_like(h)
    loss_ref = (h_ref * weight).sum() + state_ref[0].sum() + state_ref[1].sum()
    loss = (h * weight).sum() + state[0].sum() + state[1].sum()
    grads_ref = torch.autograd.grad(loss_ref, inputs)
    grads = torch.autograd.grad(loss, inputs)
    for name, g, g_ref in zip("qkvif", grads, grads_ref, strict=True):
        torch.testing.assert_close(g, g_ref, atol=tol, rtol=tol, msg=f"d{name}")


@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_state_continuation_equals_one_pass(form):
    inputs = make_inputs(2, 2, 41, 8, 8)
    h_full, state_full = run(form, inputs, chunk_size=8)
    split = 17
    first = [t[:, :, :split] for t in inputs]
    second = [t[:, :, split:] for t in inputs]
    h1, state1 = run(form, first, chunk_size=8)
    h2, state2 = run(form, second, chunk_size=8, state=state1)
    torch.testing.assert_close(torch.cat([h1, h2], dim=2), h_full, atol=1e-10, rtol=1e-10)
    for a, b in zip(state2, state_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_step_equals_sequence():
    inputs = make_inputs(2, 3, 12, 4, 5)
    h_seq = mlstm(*inputs, form="chunkwise", chunk_size=4)
    state = None
    for t in range(12):
        h_t, state = mlstm_step(*(x[:, :, t] for x in inputs), state)
        torch.testing.assert_close(h_t, h_seq[:, :, t], atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_gradcheck_including_state(form):
    B, NH, S, DQK, DV = 1, 2, 5, 3, 2
    inputs = make_inputs(B, NH, S, DQK, DV)
    state = (
        torch.randn(B, NH, DQK, DV, dtype=torch.float64, requires_grad=True),
        torch.randn(B, NH, DQK, dtype=torch.float64, requires_grad=True),
        torch.randn(B, NH, dtype=torch.float64, requires_grad=True),
    )

    def fn(q, k, v, i, f, C, n, m):
        h, (C1, n1, _) = mlstm(q, k, v, i, f, form=form, chunk_size=2, state=(C, n, m),
                               return_state=True)
        return h, C1, n1

    assert torch.autograd.gradcheck(fn, (*inputs, *state))


@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_extreme_gates_stay_finite(form):
    g = torch.Generator().manual_seed(1)
    B, NH, S, D = 1, 2, 512 if form != "parallel" else 256, 4
    q, k, v = (torch.randn(B, NH, S, D, generator=g).requires_grad_() for _ in range(3))
    i = (torch.rand(B, NH, S, generator=g) * 100 - 50).requires_grad_()
    f = (torch.rand(B, NH, S, generator=g) * 100 - 50).requires_grad_()
    h = mlstm(q, k, v, i, f, form=form, chunk_size=64)
    assert torch.isfinite(h).all()
    grads = torch.autograd.grad(h.square().sum(), (q, k, v, i, f))
    assert all(torch.isfinite(gr).all() for gr in grads)
    # and right, not only finite: the float64 recurrent form is the reference
    ref = mlstm(*(t.detach().double() for t in (q, k, v, i, f)), form="recurrent")
    torch.testing.assert_close(h.double(), ref, atol=2e-4, rtol=2e-4)


def test_long_sequence_extreme_gates_chunkwise():
    B, NH, S, D = 1, 1, 16384, 4
    q, k, v = (torch.randn(B, NH, S, D).requires_grad_() for _ in range(3))
    i = (torch.rand(B, NH, S) * 100 - 50).requires_grad_()
    f = torch.full((B, NH, S), 50.0, requires_grad=True)  # never forget: memory grows all along
    h = mlstm(q, k, v, i, f)
    grads = torch.autograd.grad(h.sum(), (q, k, v, i, f))
    assert torch.isfinite(h).all() and all(torch.isfinite(gr).all() for gr in grads)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_keep_float32_state(dtype):
    inputs32 = [t.detach().float() for t in make_inputs(2, 2, 40, 8, 8)]
    inputs_half = [t.to(dtype) for t in inputs32]
    h, (C, n, m) = mlstm(*inputs_half, return_state=True, chunk_size=16)
    assert h.dtype == dtype
    assert C.dtype == n.dtype == m.dtype == torch.float32
    h32 = mlstm(*[t.to(dtype).float() for t in inputs32], chunk_size=16)
    torch.testing.assert_close(h.float(), h32, atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("form", MLSTM_FORMS)
def test_no_state_is_the_all_zero_state(form):
    """Without a state every form starts from C = 0, n = 0: the textbook loop (which
    starts from zeros by construction) gives the same outputs, and so does an
    explicit zero state."""
    inputs = make_inputs(1, 2, 9, 4, 4)
    h, _ = run(form, inputs, chunk_size=4, eps=0.0)
    torch.testing.assert_close(h, textbook_mlstm(*inputs), atol=1e-10, rtol=1e-10)
    zero_state = (torch.zeros(1, 2, 4, 4, dtype=torch.float64),
                  torch.zeros(1, 2, 4, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    h0, _ = run(form, inputs, chunk_size=4, state=zero_state, eps=0.0)
    torch.testing.assert_close(h, h0, atol=1e-12, rtol=0)


def test_chunkwise_is_default_and_logsigmoid_forget():
    inputs = make_inputs(1, 1, 6, 3, 3)
    torch.testing.assert_close(mlstm(*inputs), mlstm(*inputs, form="chunkwise"))
    # the forget gate is sigmoid(f): a large pre-activation keeps the memory whole, so
    # the last output sums every write (here: equal input gates, no forgetting)
    q, k, v, _, _ = (t.detach() for t in inputs)
    i = torch.zeros(1, 1, 6, dtype=torch.float64)
    f = torch.full((1, 1, 6), 40.0, dtype=torch.float64)  # sigmoid(40) = 1 - 4e-18
    h = mlstm(q, k, v, i, f, eps=0.0)
    C = torch.einsum("bhsd,bhse->bhde", k, v)  # sum_t k_t v_t^T
    n = k.sum(dim=2)
    qs = q[:, :, -1] / math.sqrt(3)
    expected = torch.einsum("bhde,bhd->bhe", C, qs) / torch.einsum(
        "bhd,bhd->bh", n, qs).abs().clamp_min(1.0)[..., None]
    torch.testing.assert_close(h[:, :, -1], expected, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"form": "quadratic"}, ValueError, "form must be one of"),
        ({"chunk_size": 0}, ValueError, "chunk_size"),
        ({"chunk_size": 2.5}, TypeError, "chunk_size"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"state": (torch.zeros(1),)}, TypeError, "state must be a tuple"),
        ({"state": (torch.zeros(2, 2, 4, 4), torch.zeros(2, 2, 4), torch.zeros(2, 3))},
         ValueError, "state m"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, error, match):
    inputs = [t.detach().float() for t in make_inputs(2, 2, 5, 4, 4)]
    with pytest.raises(error, match=match):
        mlstm(*inputs, **kwargs)


def test_bad_shapes_name_the_tensor():
    q, k, v, i, f = (t.detach() for t in make_inputs(2, 2, 5, 4, 4))
    with pytest.raises(ValueError, match=r"k must have shape"):
        mlstm(q, k[:, :, :3], v, i, f)
    with pytest.raises(ValueError, match=r"f must have shape"):
        mlstm(q, k, v, i, f[:, :1])
    with pytest.raises(ValueError, match=r"q must have 4 dimensions"):
        mlstm(q[0], k, v, i, f)
    with pytest.raises(TypeError, match=r"v must be a floating tensor"):
        mlstm(q, k, v.long(), i, f)
    with pytest.raises(TypeError, match=r"i must be a torch.Tensor"):
        mlstm(q, k, v, i.tolist(), f)
    with pytest.raises(ValueError, match=r"S >= 1"):
        mlstm(q[:, :, :0], k[:, :, :0], v[:, :, :0], i[:, :, :0], f[:, :, :0])


NX_AI = Path(__file__).resolve().parent / "fixtures" / "nx_ai_mlstm_chunkwise.pt"


@pytest.mark.parametrize("form", ["chunkwise", "parallel", "recurrent"])
def test_matches_nx_ai_mlstm_kernels(form):
    """Every form against NX-AI's reference (``mlstm_kernels`` 2.0.6, ``native_autograd``,
    float64): outputs, final state and input gradients stored by
    ``tests/scripts/make_nx_ai_fixture.py``, so this runs without the package."""
    ref = torch.load(NX_AI, weights_only=True)
    inputs = [ref[name].clone().requires_grad_() for name in "qkvif"]
    h, (C, n, m) = mlstm(*inputs, form=form, chunk_size=16, return_state=True)
    torch.testing.assert_close(h, ref["h"], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(C, ref["C"], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(n, ref["n"], atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(m, ref["m"], atol=1e-10, rtol=1e-10)
    (h * ref["weights"]).sum().backward()
    for name, t in zip("qkvif", inputs, strict=True):
        torch.testing.assert_close(t.grad, ref[f"grad_{name}"], atol=1e-9, rtol=1e-9)


@pytest.mark.parametrize("form", ["chunkwise", "parallel", "recurrent"])
def test_closed_gates_keep_gradients_finite(form):
    """Input and forget gates closed hard (pre-activations -120 and -100, as training on
    M3 Yearly drove them) push the stabiliser m below -88, where exp(-m) overflows
    float32: the forward gave h = 0, the backward NaN for every input."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 16, 4, requires_grad=True) for _ in range(3))
    i = torch.full((1, 1, 16), -120.0, requires_grad=True)
    f = torch.full((1, 1, 16), -100.0, requires_grad=True)
    h = mlstm(q, k, v, i, f, form=form, chunk_size=4)
    h.sum().backward()
    assert torch.isfinite(h).all() and h.abs().max() < 1e-30
    for t in (q, k, v, i, f):
        assert torch.isfinite(t.grad).all()


def test_readout_floor_and_its_cap_by_hand():
    """h = num / (max(|den|, exp(-m)) + eps), the floor's exponent capped at 80."""
    from xlstm_ts.cells.mlstm._math import readout, zero_state

    num = torch.tensor([[2.0, -4.0]], dtype=torch.float64)
    cases = [  # (den, m, expected denominator before eps)
        (-3.0, 0.0, 3.0),  # |den| above the floor exp(0) = 1
        (0.5, 0.0, 1.0),  # the floor
        (0.5, 2.0, 0.5),  # floor exp(-2) below |den|
        (0.0, -100.0, math.exp(80.0)),  # capped: exp(100) would be the uncapped floor
    ]
    for den, m, expected in cases:
        h = readout(num, torch.tensor([den], dtype=torch.float64),
                    torch.tensor([m], dtype=torch.float64), eps=0.25)
        torch.testing.assert_close(h, num / (expected + 0.25), rtol=1e-12, atol=0)
    C, n, m = zero_state((2, 3), 4, 5, dtype=torch.float64, device=torch.device("cpu"))
    assert (C.shape, n.shape, m.shape) == ((2, 3, 4, 5), (2, 3, 4), (2, 3))
    assert C.dtype == n.dtype == m.dtype == torch.float64
    assert not (C.any() or n.any() or m.any())


@pytest.mark.parametrize("lead", [(3,), (2, 3, 5)], ids=["rank1", "rank3"])
def test_step_maths_takes_any_leading_dims(lead):
    # _math.step documents (...) leading dims (the chunkwise form passes (B, NH, NC));
    # every rank must give the textbook update, here against one (B, NH) = (1, prod) step
    from xlstm_ts.cells.mlstm import _math

    DQK, DV = 4, 6
    g = torch.Generator().manual_seed(0)
    q, k = (torch.randn(*lead, DQK, generator=g, dtype=torch.float64) for _ in range(2))
    v = torch.randn(*lead, DV, generator=g, dtype=torch.float64)
    i, log_f = torch.randn(*lead, generator=g, dtype=torch.float64), torch.zeros(lead).double()
    C = torch.randn(*lead, DQK, DV, generator=g, dtype=torch.float64)
    n = torch.randn(*lead, DQK, generator=g, dtype=torch.float64)
    m = torch.zeros(lead, dtype=torch.float64)
    h, (C1, n1, m1) = _math.step(q, k, v, i, log_f, C, n, m, eps=0.0)
    def flat(x):  # (*lead, ...) -> (1, prod(lead), ...)
        return x.reshape(1, -1, *x.shape[len(lead):])

    h_ref, (C_ref, _, _) = _math.step(*(flat(x) for x in (q, k, v, i, log_f, C, n, m)),
                                      eps=0.0)
    # by hand for the first element: f = 1, so C = C + e^i k v^T (m stays <= i)
    e = torch.exp(i.reshape(-1)[0])
    C_hand = C.reshape(-1, DQK, DV)[0] + e * torch.outer(k.reshape(-1, DQK)[0],
                                                         v.reshape(-1, DV)[0])
    scale = torch.exp(-m1.reshape(-1)[0])  # the stabilized state is C_true / exp(m)
    torch.testing.assert_close(C1.reshape(-1, DQK, DV)[0] / scale, C_hand)
    torch.testing.assert_close(h.reshape(-1, DV), h_ref.reshape(-1, DV))
    torch.testing.assert_close(C1.reshape(-1, DQK, DV), C_ref.reshape(-1, DQK, DV))
    assert h.shape == (*lead, DV) and C1.shape == (*lead, DQK, DV) and n1.shape == (*lead, DQK)


@pytest.mark.parametrize(
    "case", [
        {},  # the scores' sum wins the denominator
        {"q_scale": 1e-3, "m0_shift": -3.0},  # the exp(-m) floor wins: m's own gradient
        {"m0_shift": 6.0},  # the carried-in state sets the stabilizer of early rows
        {"eps": 0.5},  # a large eps makes the output depend on m
    ], ids=["den", "floor", "carry", "eps"])
def test_recomputing_backward_equals_autograd_of_the_reference(case, monkeypatch):
    """The chunkwise form's hand-written backward (``_inter`` and ``_intra``) against
    autograd through the reference composition of ``_math`` (chunk summaries, the
    ``advance`` loop, ``chunk_outputs``), on every input including the carried-in
    state and with losses on the final state; blocks of 2 chunks, so ragged last
    blocks are crossed in both passes."""
    from xlstm_ts.cells.mlstm import _inter, _intra, _math
    from xlstm_ts.cells.mlstm.chunkwise import mlstm_chunkwise

    B, NH, L, DQK, DV = 2, 1, 6, 4, 3
    monkeypatch.setattr(_intra, "_BLOCK_ELEMENTS", 2 * L * L)
    monkeypatch.setattr(_inter, "_BLOCK_ELEMENTS", 2 * B * NH * L * DQK)
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g, dtype=torch.float64)

    S = 5 * L  # (B * NH, NC) = 10 chunks -> 5 blocks of 2 in the intra pass, 3 in the inter
    q = randn(B, NH, S, DQK) * case.get("q_scale", 1.0)
    k, v = randn(B, NH, S, DQK), randn(B, NH, S, DV)
    i, log_f = randn(B, NH, S), torch.nn.functional.logsigmoid(randn(B, NH, S) + 2)
    C, n, m = randn(B, NH, DQK, DV), randn(B, NH, DQK), randn(B, NH) + case.get("m0_shift", 0.0)
    inputs = [t.requires_grad_() for t in (q, k, v, i, log_f, C, n, m)]
    eps = case.get("eps", 1e-6)

    def reference(q, k, v, i, log_f, C, n, m):
        qc, kc, vc = (x.reshape(B, NH, S // L, L, -1) for x in (q, k, v))
        ic, Fc = i.reshape(B, NH, S // L, L), log_f.reshape(B, NH, S // L, L).cumsum(-1)
        entering = []
        for C_add, n_add, m_add, F_end in zip(
                *(x.unbind(2) for x in _math.chunk_summary(kc, vc, Fc, ic)), strict=True):
            entering.append((C, n, m))
            C, n, m = _math.advance(C, n, m, C_add, n_add, m_add, F_end)
        C0, n0, m0 = (torch.stack(parts, dim=2) for parts in zip(*entering, strict=True))
        h = _math.chunk_outputs(qc, kc, vc, Fc, ic, C0, n0, m0, eps)
        return h.reshape(B, NH, S, DV), C, n, m

    def ours(q, k, v, i, log_f, C, n, m):
        h, (C, n, m) = mlstm_chunkwise(q, k, v, i, log_f, C, n, m, eps, L)
        return h, C, n, m

    weights = [randn(*x.shape) for x in reference(*inputs)]

    def loss(outputs):
        return sum((x * w).sum() for x, w in zip(outputs, weights, strict=True))

    for a, b in zip(ours(*inputs), reference(*inputs), strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    grads = torch.autograd.grad(loss(ours(*inputs)), inputs)
    grads_ref = torch.autograd.grad(loss(reference(*inputs)), inputs)
    for name, a, b in zip(("q", "k", "v", "i", "log_f", "C", "n", "m"), grads, grads_ref,
                          strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10, msg=f"d{name}")
    assert torch.autograd.gradcheck(ours, inputs)


def test_chunkwise_gradients_through_every_state_part():
    """Losses on the returned C, n and m and a carried-in state, chunkwise (own
    backward) against the recurrent form (autograd through the step loop)."""
    inputs = make_inputs(2, 2, 23, 5, 4)
    g = torch.Generator().manual_seed(3)
    state = [torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64),
             torch.randn(2, 2, 5, generator=g, dtype=torch.float64),
             torch.randn(2, 2, generator=g, dtype=torch.float64)]
    state = [t.requires_grad_() for t in state]

    def loss(form):
        h, (C, n, m) = run(form, inputs, chunk_size=4, state=state)
        return (h.sin().sum() + (C * C).sum() + n.cos().sum() + 3.0 * m.sum())

    grads = torch.autograd.grad(loss("chunkwise"), [*inputs, *state])
    grads_ref = torch.autograd.grad(loss("recurrent"), [*inputs, *state])
    for name, a, b in zip(["q", "k", "v", "i", "f", "C", "n", "m"], grads, grads_ref,
                          strict=True):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9, msg=f"d{name}")
