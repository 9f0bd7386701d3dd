"""mLSTM, recurrent form: one step at a time, O(1) memory per step in inference.

This is the oracle the other forms are tested against, and the form used for
streaming updates. Shapes as in :mod:`xlstm_ts.cells.mlstm._math`.
"""

from __future__ import annotations

import torch

from . import _math


def mlstm_recurrent(q, k, v, i, log_f, C, n, m, eps: float):
    """q, k (B, NH, S, DQK); v (B, NH, S, DV); i, log_f (B, NH, S); state (C, n, m).

    Returns h (B, NH, S, DV) and the final state.
    """
    # Unbind once: indexing [:, :, t] per step would make autograd scatter every
    # step's gradient into a fresh full-size zero tensor, O(S^2) in the backward.
    outputs = []
    for q_t, k_t, v_t, i_t, log_f_t in zip(*(x.unbind(2) for x in (q, k, v, i, log_f)),
                                           strict=True):
        h, (C, n, m) = _math.step(q_t, k_t, v_t, i_t, log_f_t, C, n, m, eps)
        outputs.append(h)
    return torch.stack(outputs, dim=2), (C, n, m)
