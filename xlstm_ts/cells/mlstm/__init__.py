"""The mLSTM cell: matrix memory with exponential gating.

Per step, with ``log_f = logsigmoid(f)`` and ``q' = q * DQK**-0.5``::

    m_t = max(log_f_t + m_{t-1}, i_t)
    C_t = exp(log_f_t + m_{t-1} - m_t) C_{t-1} + exp(i_t - m_t) k_t v_t^T
    n_t = exp(log_f_t + m_{t-1} - m_t) n_{t-1} + exp(i_t - m_t) k_t
    h_t = C_t^T q'_t / (max(|n_t^T q'_t|, exp(-m_t)) + eps)

Three forms compute the same numbers: ``recurrent`` (step loop, the oracle),
``parallel`` (quadratic in S) and ``chunkwise`` (linear in S, the default).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F_

from .. import _backend
from .. import _validation as _v
from . import _math
from .chunkwise import mlstm_chunkwise
from .parallel import mlstm_parallel
from .recurrent import mlstm_recurrent

__all__ = ["FORMS", "MLSTMState", "mlstm", "mlstm_step"]

MLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(C (B, NH, DQK, DV), n (B, NH, DQK), m (B, NH)), kept in float32 or float64."""

FORMS = ("parallel", "chunkwise", "recurrent")


def _prepare_state(state, B: int, NH: int, DQK: int, DV: int, dtype, device) -> MLSTMState:
    if state is None:
        return _math.zero_state((B, NH), DQK, DV, dtype=dtype, device=device)
    C, n, m = _v.check_state(
        state, ("C", "n", "m"), ((B, NH, DQK, DV), (B, NH, DQK), (B, NH)),
        ("(B, NH, DQK, DV)", "(B, NH, DQK)", "(B, NH)"),
    )
    return C.to(dtype), n.to(dtype), m.to(dtype)


def mlstm(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    *,
    form: str = "chunkwise",
    chunk_size: int = 64,
    state: MLSTMState | None = None,
    return_state: bool = False,
    eps: float = 1e-6,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, MLSTMState]:
    """Run the mLSTM cell over a sequence.

    Args:
        q, k: queries and keys, ``(B, NH, S, DQK)``.
        v: values, ``(B, NH, S, DV)``.
        i, f: input- and forget-gate pre-activations, ``(B, NH, S)``.
        form: ``"chunkwise"`` (default, linear in S), ``"parallel"`` (quadratic
            in S, fastest for short sequences) or ``"recurrent"`` (step loop).
        chunk_size: the longest chunk of the chunkwise form: S is cut into
            ``ceil(S / chunk_size)`` chunks of equal length (the last padded where
            they cannot be); the Triton kernels use chunks of ``chunk_size``.
        state: ``(C, n, m)`` carried from a previous call, shapes
            ``(B, NH, DQK, DV)``, ``(B, NH, DQK)``, ``(B, NH)``; ``None`` starts
            from an empty memory.
        return_state: also return the state after the last step.
        eps: added to the normalizer's denominator.
        backend: ``"auto"`` (Triton kernels for CUDA tensors when Triton is installed,
            else PyTorch), ``"triton"`` or ``"torch"``. The Triton kernels compute the
            chunkwise form (``form`` is then ignored) and need ``chunk_size`` a power of
            two >= 16; q, k, v stay in their dtype (bf16 / fp16 matmuls on tensor cores),
            gates and state in float32.

    Returns:
        ``h`` of shape ``(B, NH, S, DV)`` in the dtype of ``v``, and the final
        state (float32, or float64 for float64 inputs) when ``return_state``.

    Examples::

        >>> B, NH, S, D = 2, 4, 100, 16
        >>> q, k, v = (torch.randn(B, NH, S, D) for _ in range(3))
        >>> i, f = torch.randn(B, NH, S), torch.randn(B, NH, S) + 3
        >>> h, state = mlstm(q, k, v, i, f, return_state=True)
        >>> h.shape
        torch.Size([2, 4, 100, 16])
    """
    _v.check_tensor("q", q, 4, "(B, NH, S, DQK)")
    B, NH, S, DQK = q.shape
    _v.check_tensor("k", k, 4, "(B, NH, S, DQK)")
    _v.check_shape("k", k, q.shape, "(B, NH, S, DQK)")
    _v.check_tensor("v", v, 4, "(B, NH, S, DV)")
    DV = v.shape[-1]
    _v.check_shape("v", v, (B, NH, S, DV), "(B, NH, S, DV)")
    for name, gate in (("i", i), ("f", f)):
        _v.check_tensor(name, gate, 3, "(B, NH, S)")
        _v.check_shape(name, gate, (B, NH, S), "(B, NH, S)")
    _v.check_same_device(q=q, k=k, v=v, i=i, f=f)
    if S == 0:
        raise ValueError("q must hold at least one time step (S >= 1). Got S = 0.")
    _v.check_choice("form", form, FORMS)
    _v.check_positive_int("chunk_size", chunk_size)
    eps = _v.check_nonnegative_float("eps", eps)

    dtype = _v.compute_dtype(q, k, v, i, f)
    if _backend.resolve(backend, q.device) == "triton":
        if chunk_size < 16 or chunk_size & (chunk_size - 1):
            raise ValueError(f"chunk_size must be a power of two >= 16 for the Triton "
                             f"kernels. Got {chunk_size}.")
        from .triton_chunkwise import mlstm_chunkwise_triton

        dtype = torch.float32 if dtype != torch.float64 else dtype
        C, n, m = _prepare_state(state, B, NH, DQK, DV, dtype, q.device)
        h, final = mlstm_chunkwise_triton(q * DQK**-0.5, k, v, i.to(dtype),
                                          F_.logsigmoid(f.to(dtype)), C, n, m, eps, chunk_size)
        return (h, final) if return_state else h
    C, n, m = _prepare_state(state, B, NH, DQK, DV, dtype, q.device)
    q_, k_, v_, i_ = q.to(dtype) * DQK**-0.5, k.to(dtype), v.to(dtype), i.to(dtype)
    log_f = F_.logsigmoid(f.to(dtype))

    if form == "chunkwise":
        h, final = mlstm_chunkwise(q_, k_, v_, i_, log_f, C, n, m, eps, chunk_size)
    elif form == "parallel":
        h, final = mlstm_parallel(q_, k_, v_, i_, log_f, C, n, m, eps)
    else:
        h, final = mlstm_recurrent(q_, k_, v_, i_, log_f, C, n, m, eps)
    h = h.to(v.dtype)
    return (h, final) if return_state else h


def mlstm_step(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    f: torch.Tensor,
    state: MLSTMState | None,
    *,
    eps: float = 1e-6,
    backend: str = "auto",
) -> tuple[torch.Tensor, MLSTMState]:
    """Advance the mLSTM by one step in O(1): the update behind streaming forecasts.

    Args:
        q, k: ``(B, NH, DQK)``; v: ``(B, NH, DV)``; i, f: ``(B, NH)`` gate
            pre-activations.
        state: ``(C, n, m)`` as returned by :func:`mlstm` or a previous step,
            or ``None`` for an empty memory.
        backend: as in :func:`mlstm`; the Triton step kernel is for inference (no
            autograd).

    Returns:
        ``h`` ``(B, NH, DV)`` in the dtype of ``v`` and the new state.
    """
    _v.check_tensor("q", q, 3, "(B, NH, DQK)")
    B, NH, DQK = q.shape
    _v.check_tensor("k", k, 3, "(B, NH, DQK)")
    _v.check_shape("k", k, q.shape, "(B, NH, DQK)")
    _v.check_tensor("v", v, 3, "(B, NH, DV)")
    DV = v.shape[-1]
    _v.check_shape("v", v, (B, NH, DV), "(B, NH, DV)")
    for name, gate in (("i", i), ("f", f)):
        _v.check_tensor(name, gate, 2, "(B, NH)")
        _v.check_shape(name, gate, (B, NH), "(B, NH)")
    _v.check_same_device(q=q, k=k, v=v, i=i, f=f)
    eps = _v.check_nonnegative_float("eps", eps)

    dtype = _v.compute_dtype(q, k, v, i, f)
    if _backend.resolve(backend, q.device) == "triton" and not torch.is_grad_enabled():
        from .triton_chunkwise import mlstm_step_triton

        C, n, m = _prepare_state(state, B, NH, DQK, DV, torch.float32, q.device)
        return mlstm_step_triton(q * DQK**-0.5, k, v, i.float(), F_.logsigmoid(f.float()),
                                 C, n, m, eps)
    C, n, m = _prepare_state(state, B, NH, DQK, DV, dtype, q.device)
    h, new_state = _math.step(q.to(dtype) * DQK**-0.5, k.to(dtype), v.to(dtype), i.to(dtype),
                              F_.logsigmoid(f.to(dtype)), C, n, m, eps)
    return h.to(v.dtype), new_state
