"""Building blocks shared by the mLSTM forms.

Notation
--------
B batch, NH heads, S sequence length, L chunk length, NC number of chunks,
DQK query/key head dim, DV value head dim. ``...`` stands for any leading
batch dims, e.g. (B, NH) or (B, NH, NC).

All functions take ``q`` already scaled by ``DQK**-0.5``, gates in log space
(``log_f = logsigmoid(f)``, ``i`` the raw input-gate pre-activation) and work
in the dtype they are given (the public entry point picks float32/float64).

The state (C, n, m) is stabilized: the true memory is ``exp(m) * C`` and the
true normalizer ``exp(m) * n``. Outputs do not depend on the choice of m, which
exists only to keep every ``exp`` argument <= 0; it does enter the outputs
through ``eps``, which is added in stabilized units. "No state" is C = 0, n = 0,
m = 0, exactly as an explicit all-zero state and as NX-AI's ``mlstm_kernels``.
"""

from __future__ import annotations

import torch


def zero_state(batch_shape: tuple[int, ...], dqk: int, dv: int, *, dtype: torch.dtype,
               device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The empty state: C (..., DQK, DV) = 0, n (..., DQK) = 0, m (...) = 0."""
    C = torch.zeros(*batch_shape, dqk, dv, dtype=dtype, device=device)
    n = torch.zeros(*batch_shape, dqk, dtype=dtype, device=device)
    m = torch.zeros(batch_shape, dtype=dtype, device=device)
    return C, n, m


# exp(-m) overflows float32 past m = -88 (input gates closed hard, as training on M3
# Yearly drove them): the forward still gave h = 0, but the backward multiplied 0 by
# inf and every gradient upstream became NaN. exp(80) already makes h ~ 1e-35 num.
_MAX_NEG_M = 80.0


def readout(num: torch.Tensor, den: torch.Tensor, m: torch.Tensor, eps: float) -> torch.Tensor:
    """h = num / (max(|den|, exp(-m)) + eps); num (..., DV), den and m (...); the floor's
    exponent is capped at 80, so the backward stays finite however negative m gets."""
    floor = torch.exp(torch.clamp(-m, max=_MAX_NEG_M))
    return num / (torch.maximum(den.abs(), floor) + eps).unsqueeze(-1)


def step(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, i: torch.Tensor, log_f: torch.Tensor,
         C: torch.Tensor, n: torch.Tensor, m: torch.Tensor, eps: float):
    """One recurrent step.

    q, k: (..., DQK); v: (..., DV); i, log_f, m: (...); C: (..., DQK, DV); n: (..., DQK).
    Returns h (..., DV) and the new state (C, n, m).
    """
    m_new = torch.maximum(log_f + m, i)
    decay = torch.exp(log_f + m - m_new)  # stabilized forget gate f'
    gain = torch.exp(i - m_new)  # stabilized input gate i'
    C = decay[..., None, None] * C + gain[..., None, None] * (k.unsqueeze(-1) * v.unsqueeze(-2))
    n = decay[..., None] * n + gain[..., None] * k
    num = (q.unsqueeze(-2) @ C).squeeze(-2)  # (..., DV)
    den = (q * n).sum(-1)
    return readout(num, den, m_new, eps), (C, n, m_new)


def chunk_outputs(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, F: torch.Tensor,
                  i: torch.Tensor, C0: torch.Tensor, n0: torch.Tensor, m0: torch.Tensor,
                  eps: float) -> torch.Tensor:
    """Outputs of one chunk in the quadratic parallel form, given the state before it.

    q, k: (..., L, DQK); v: (..., L, DV); F: (..., L) cumulative log forget gate
    within the chunk (inclusive); i: (..., L); C0 (..., DQK, DV), n0 (..., DQK),
    m0 (...) the state entering the chunk. Returns h (..., L, DV).

    Step s contributes to step t >= s with log weight ``F_t - F_s + i_s``; the
    entering state contributes with ``F_t + m0``. The stabilizer m_t is the max
    of these, exactly the m_t the recurrence would reach.
    """
    L = q.shape[-2]
    causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
    log_weights = (F.unsqueeze(-1) - F.unsqueeze(-2) + i.unsqueeze(-2)).masked_fill(
        ~causal, float("-inf")
    )  # (..., L, L)
    log_carry = F + m0.unsqueeze(-1)  # (..., L)
    m = torch.maximum(log_weights.amax(-1), log_carry)  # (..., L)
    weights = torch.exp(log_weights - m.unsqueeze(-1))
    carry = torch.exp(log_carry - m)
    scores = (q @ k.transpose(-1, -2)) * weights  # (..., L, L)
    num = scores @ v + carry.unsqueeze(-1) * (q @ C0)  # (..., L, DV)
    den = scores.sum(-1) + carry * (q @ n0.unsqueeze(-1)).squeeze(-1)  # (..., L)
    return readout(num, den, m, eps)


def chunk_summary(k: torch.Tensor, v: torch.Tensor, F: torch.Tensor, i: torch.Tensor):
    """What a chunk adds to the state, stabilized by its own max.

    k: (..., L, DQK); v: (..., L, DV); F, i: (..., L). Returns
    ``(C_add (..., DQK, DV), n_add (..., DQK), m_add (...), F_end (...))`` where the
    chunk's unstabilized contribution is ``exp(m_add) * C_add`` and ``F_end`` is the
    total log forget over the chunk.
    """
    F_end = F[..., -1]
    log_w = F_end.unsqueeze(-1) - F + i  # (..., L): weight of step s at the chunk end
    m_add = log_w.amax(-1)
    kw = k * torch.exp(log_w - m_add.unsqueeze(-1)).unsqueeze(-1)  # (..., L, DQK)
    return kw.transpose(-1, -2) @ v, kw.sum(-2), m_add, F_end


def advance(C: torch.Tensor, n: torch.Tensor, m: torch.Tensor, C_add: torch.Tensor,
            n_add: torch.Tensor, m_add: torch.Tensor, F_end: torch.Tensor):
    """State after a chunk: decay the entering state by exp(F_end) and add the chunk summary."""
    m_new = torch.maximum(F_end + m, m_add)
    decay = torch.exp(F_end + m - m_new)
    gain = torch.exp(m_add - m_new)
    C = decay[..., None, None] * C + gain[..., None, None] * C_add
    n = decay[..., None] * n + gain[..., None] * n_add
    return C, n, m_new
