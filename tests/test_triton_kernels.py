"""Triton kernels against the PyTorch reference, under Triton's CPU interpreter.

Tiny shapes (the interpreter runs a 64x64 ``tl.dot`` in ~0.1 s): odd S with a
ragged last chunk, carried states, extreme gate values, forward and gradients,
float32 at atol/rtol 1e-4. ``tests/test_triton_gpu.py`` covers bf16 and large
shapes on a GPU.
"""

import pytest
import torch

pytest.importorskip("triton")
from xlstm_ts.cells import _backend, mlstm, mlstm_step, slstm
from xlstm_ts.models import XLSTMStack

pytestmark = pytest.mark.skipif(not _backend.interpreting(),
                                reason="needs TRITON_INTERPRET=1 (set by conftest without a GPU)")
TOL = dict(atol=1e-4, rtol=1e-4)


def _mlstm_inputs(B, NH, S, DQK, DV, gate_scale=2.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k = (torch.randn(B, NH, S, DQK, generator=g).requires_grad_() for _ in range(2))
    v = torch.randn(B, NH, S, DV, generator=g).requires_grad_()
    i = (gate_scale * torch.randn(B, NH, S, generator=g)).requires_grad_()
    f = (gate_scale * torch.randn(B, NH, S, generator=g) + 2).requires_grad_()
    return q, k, v, i, f


def _state(B, NH, DQK, DV, seed=1):
    g = torch.Generator().manual_seed(seed)
    return (0.1 * torch.randn(B, NH, DQK, DV, generator=g),
            0.1 * torch.randn(B, NH, DQK, generator=g).abs(), 0.5 * torch.randn(B, NH, generator=g))


def _assert_grads_close(got, want):
    """Gradients agree to 1e-4 of each one's largest magnitude (they reach ~70 here)."""
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=1e-4 * b.abs().max().item(), rtol=1e-4)


def _loss_and_grads(outputs, inputs, seed=2):
    """A random linear loss on every output (fixed shapes, not strides) and its gradients."""
    g = torch.Generator().manual_seed(seed)
    loss = sum((out * torch.randn(out.shape, generator=g)).sum() for out in outputs)
    return torch.autograd.grad(loss, inputs)


@pytest.mark.parametrize("S, with_state, gate_scale", [
    (37, False, 2.0),   # ragged last chunk, empty memory
    (32, True, 2.0),    # carried state in
    (21, True, 12.0),   # extreme gates: exp(i) up to e^40, forget near 0 or 1
])
def test_mlstm_chunkwise_matches_reference(S, with_state, gate_scale):
    B, NH, DQK, DV = 2, 2, 16, 48  # DV walked in two blocks of 32 in the backward
    inputs = _mlstm_inputs(B, NH, S, DQK, DV, gate_scale)
    state = _state(B, NH, DQK, DV) if with_state else None
    results = {}
    for backend in ("triton", "torch"):
        h, (C, n, m) = mlstm(*inputs, chunk_size=16, state=state, return_state=True,
                             backend=backend)
        results[backend] = (h, C, n, m, _loss_and_grads((h, C, n), inputs))
    got, want = results["triton"], results["torch"]
    for a, b in zip(got[:4], want[:4], strict=True):
        torch.testing.assert_close(a, b, **TOL)
    _assert_grads_close(got[4], want[4])


def test_mlstm_carried_state_equals_one_pass():
    B, NH, S, D = 1, 2, 40, 16
    inputs = _mlstm_inputs(B, NH, S, D, D)
    whole = mlstm(*inputs, chunk_size=16, backend="torch")
    first = [x[:, :, :17] for x in inputs]
    second = [x[:, :, 17:] for x in inputs]
    h1, state = mlstm(*first, chunk_size=16, return_state=True, backend="triton")
    h2 = mlstm(*second, chunk_size=16, state=state, backend="triton")
    torch.testing.assert_close(torch.cat([h1, h2], dim=2), whole, **TOL)
    got = _loss_and_grads((torch.cat([h1, h2], dim=2),), inputs)
    want = _loss_and_grads((whole,), inputs)
    _assert_grads_close(got, want)


def test_mlstm_step_kernel_matches_reference():
    B, NH, D = 3, 2, 16
    q, k, v = (torch.randn(B, NH, D) for _ in range(3))
    i, f = torch.randn(B, NH), torch.randn(B, NH) + 2
    state = _state(B, NH, D, D)
    with torch.no_grad():
        got = mlstm_step(q, k, v, i, f, state, backend="triton")
        want = mlstm_step(q, k, v, i, f, state, backend="torch")
    torch.testing.assert_close(got[0], want[0], **TOL)
    for a, b in zip(got[1], want[1], strict=True):
        torch.testing.assert_close(a, b, **TOL)


@pytest.mark.parametrize("forget, with_state", [("sigmoid", False), ("exp", True)])
def test_slstm_fused_matches_reference(forget, with_state):
    B, S, NH, DH = 3, 9, 2, 16
    g = torch.Generator().manual_seed(0)
    gates_x = torch.randn(B, S, 4, NH, DH, generator=g).requires_grad_()
    R = (0.2 * torch.randn(4, NH, DH, DH, generator=g)).requires_grad_()
    state = None
    if with_state:
        h0, c0, m0 = (0.3 * torch.randn(B, NH, DH, generator=g) for _ in range(3))
        state = (h0, c0, 1.0 + torch.rand(B, NH, DH, generator=g), m0)
    results = {}
    for backend in ("triton", "torch"):
        h, final = slstm(gates_x, R, state=state, forget=forget, return_state=True,
                         backend=backend)
        results[backend] = (h, *final, _loss_and_grads((h, *final), (gates_x, R)))
    got, want = results["triton"], results["torch"]
    for a, b in zip(got[:5], want[:5], strict=True):
        torch.testing.assert_close(a, b, **TOL)
    _assert_grads_close(got[5], want[5])


def test_stack_runs_on_the_kernels():
    torch.manual_seed(0)
    stack = XLSTMStack(16, 2, slstm_at=(1,), num_heads=2, chunk_size=16).eval()
    x = torch.randn(2, 20, 16)
    with torch.no_grad():
        want = stack(x)
        for block in stack.blocks:
            block.backend = "triton"
        got = stack(x)
    torch.testing.assert_close(got, want, **TOL)


def test_backend_selection(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert _backend.resolve("auto", cpu) == "torch"  # never the interpreter by default
    assert _backend.resolve("auto", cuda) == "triton"
    assert _backend.resolve("torch", cuda) == "torch"
    with pytest.raises(ValueError, match="backend must be one of"):
        _backend.resolve("cuda", cpu)
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ValueError, match="need CUDA tensors"):
        _backend.resolve("triton", cpu)
    monkeypatch.setattr(_backend, "triton_available", lambda: False)
    assert _backend.resolve("auto", cuda) == "torch"
    with pytest.raises(ValueError, match="Triton is not installed"):
        _backend.resolve("triton", cuda)
    q = torch.randn(1, 1, 4, 16)
    with pytest.raises(ValueError, match="backend must be one of"):
        mlstm(q, q, q, q[..., 0], q[..., 0], backend="fast")
