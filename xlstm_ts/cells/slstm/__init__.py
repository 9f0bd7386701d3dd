"""The sLSTM cell: scalar memory, exponential gating, memory mixing within heads.

Per step, with pre-activations ``x~ = gates_x_t + h_{t-1} @ R`` (per gate and head)::

    log_f = logsigmoid(f~)          (or f~ itself with forget="exp")
    m_t = max(log_f + m_{t-1}, i~)
    i' = exp(i~ - m_t),  f' = exp(log_f + m_{t-1} - m_t)
    c_t = f' c_{t-1} + i' tanh(z~)
    n_t = f' n_{t-1} + i'
    h_t = sigmoid(o~) c_t / n_t
"""

from __future__ import annotations

import torch

from .. import _backend
from .. import _validation as _v
from .recurrent import SLSTMFunction, slstm_inference, slstm_step

__all__ = ["SLSTMState", "slstm"]

SLSTMState = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]
"""(h, c, n, m), each (B, NH, DH), kept in float32 or float64."""

_FORGET = ("sigmoid", "exp")


def slstm(
    gates_x: torch.Tensor,
    R: torch.Tensor,
    *,
    state: SLSTMState | None = None,
    forget: str = "sigmoid",
    return_state: bool = False,
    backend: str = "auto",
) -> torch.Tensor | tuple[torch.Tensor, SLSTMState]:
    """Run the sLSTM cell over a sequence.

    Args:
        gates_x: input contributions plus bias, ``(B, S, 4, NH, DH)``, gate order
            (i, f, z, o).
        R: block-diagonal recurrent weights ``(4, NH, DH, DH)``: gate g of head k
            receives ``h_{t-1}[k] @ R[g, k]``.
        state: ``(h, c, n, m)``, each ``(B, NH, DH)``; ``None`` starts from zeros
            with the first step taking ``m_1 = i_1``.
        forget: ``"sigmoid"`` (log_f = logsigmoid(f)) or ``"exp"`` (log_f = f).
        return_state: also return the state after the last step.
        backend: ``"auto"`` (the fused Triton recurrence for CUDA tensors when Triton is
            installed, else PyTorch), ``"triton"`` or ``"torch"``.

    Returns:
        ``h`` ``(B, S, NH, DH)`` in the dtype of ``gates_x``, and the final state
        (float32, or float64 for float64 inputs) when ``return_state``.
    """
    _v.check_tensor("gates_x", gates_x, 5, "(B, S, 4, NH, DH)")
    B, S, G, NH, DH = gates_x.shape
    if G != 4:
        raise ValueError(
            f"gates_x must have shape (B, S, 4, NH, DH) with the 4 gates (i, f, z, o) on "
            f"dim 2. Got {tuple(gates_x.shape)}."
        )
    if S == 0:
        raise ValueError("gates_x must hold at least one time step (S >= 1). Got S = 0.")
    _v.check_tensor("R", R, 4, "(4, NH, DH, DH)")
    _v.check_shape("R", R, (4, NH, DH, DH), "(4, NH, DH, DH)")
    _v.check_same_device(gates_x=gates_x, R=R)
    _v.check_choice("forget", forget, _FORGET)

    dtype = _v.compute_dtype(gates_x, R)
    if state is None:
        zeros = gates_x.new_zeros(B, NH, DH, dtype=dtype)
        h0, c0, n0 = zeros, zeros, zeros
        m0 = torch.full_like(zeros, float("-inf"))
    else:
        dims = "(B, NH, DH)"
        h0, c0, n0, m0 = (s.to(dtype) for s in _v.check_state(
            state, ("h", "c", "n", "m"), [(B, NH, DH)] * 4, [dims] * 4))
    if _backend.resolve(backend, gates_x.device) == "triton":
        from .triton_fused import slstm_triton

        state32 = (s.float() for s in (h0, c0, n0, m0))
        h, *final = slstm_triton(gates_x, R, *state32, forget == "exp")
    elif S == 1 and not torch.is_grad_enabled():  # a streamed step: no autograd node
        final = slstm_step(gates_x[:, 0].to(dtype), R.to(dtype), h0, c0, n0, m0,
                           forget == "exp")
        h = final[0].unsqueeze(1)
    elif not torch.is_grad_enabled():  # forecasting: a lean loop, nothing kept
        h, final = slstm_inference(gates_x.to(dtype), R.to(dtype), h0, c0, n0, m0,
                                   forget == "exp")
    else:
        h, *final = SLSTMFunction.apply(gates_x.to(dtype), R.to(dtype), h0, c0, n0, m0,
                                        forget == "exp")
    h = h.to(gates_x.dtype)
    return (h, tuple(final)) if return_state else h
