"""Absorbing new observations into a fitted forecaster (``XLSTMForecaster.update``).

Networks with a causal encoder (``network.streaming``, e.g. XLSTMTime) carry a
per-series stream state that advances over the new steps only; the others keep
a rolling window of the last ``lookback`` steps and re-encode it at predict time.

A carried state is first encoded from the last ``lookback`` steps, then advanced,
so forecasts equal re-encoding that whole span (anchor window plus new steps) with
the anchor window's normalisation, to float32 round-off. They drift from a fresh
sliding-window forecast as the anchor ages: older steps fade through the forget
gates but are not dropped, and the RevIN statistics stay the anchor's.
``reset_state()`` re-anchors. Patch networks have no such state (patch tokens carry
position embeddings and are flattened into the head).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .data import SeriesData, append_observations, continue_series
from .inference import advance_state, encoded_state

log = logging.getLogger("xlstm_ts")


def absorb(net, fitted: SeriesData, new: SeriesData, lookback: int, state: dict | None, *,
           skip_seen: bool = False, progress: bool = False
           ) -> tuple[SeriesData, dict | None]:
    """``fitted`` with the rows of ``new`` appended (each series' last ``lookback`` kept)
    and the stream ``state`` advanced over them (None for networks without one).

    Everything is computed before anything is replaced: a failure leaves the caller's
    model as it was. A state of None is first encoded from the current windows."""
    new, codes, skipped = continue_series(fitted, new, skip_seen=skip_seen)
    if skipped:
        log.info("update: %d rows were already absorbed and are left out", skipped)
    if not new.n_series:
        return fitted, state
    if net.streaming:  # inference mode: no autograd bookkeeping (about a third of a step)
        with torch.inference_mode():
            state = _advanced(net, fitted, new, codes, lookback, state, progress)
    return append_observations(fitted, new, codes, keep=lookback), state


def _advanced(net, fitted: SeriesData, new: SeriesData, codes: np.ndarray, lookback: int,
              state: dict | None, progress: bool) -> dict:
    """The stream ``state`` advanced over the rows of ``new`` (series j continuing
    fitted series ``codes[j]``); a state of None is first encoded from ``fitted``."""
    fresh = state is None  # a state of our own, safe to write into
    state = encoded_state(net, fitted, lookback, progress) if fresh else state
    n_state = next(iter(state.values())).shape[0]
    for T in np.unique(new.lengths):  # series with equal counts of new steps
        group = np.flatnonzero(new.lengths == T)
        every = len(group) == n_state and np.array_equal(codes[group], np.arange(n_state))
        advanced = advance_state(net, state, _steps(new, group, int(T), fitted.static,
                                                    None if every else codes[group]),
                                 codes[group])
        if every:
            state, fresh = advanced, True  # every series, in order: nothing to merge
            continue
        if not fresh:  # copy on first write: the caller's state stays as it was
            state, fresh = {k: v.clone() for k, v in state.items()}, True
        series = torch.from_numpy(codes[group])
        for k, v in advanced.items():
            state[k][series] = v
    return state


def _steps(new: SeriesData, group: np.ndarray, T: int, static: torch.Tensor,
           codes: np.ndarray | None) -> dict[str, torch.Tensor]:
    """The network inputs of the ``T`` new steps of the series ``group`` of ``new``:
    history (n, T), history_mask (n, T), past (n, T, P), future (n, T, F) and the
    static rows ``codes`` of ``static`` (None: all of them, in order)."""
    if len(group) == new.n_series:  # every new series has T steps: its rows, reshaped
        def take(values):
            return values.reshape(len(group), T, *values.shape[1:])
    else:
        rows = torch.from_numpy(new.indptr[group][:, None] + np.arange(T))

        def take(values):
            return values[rows]
    return {"history": take(new.target), "history_mask": take(new.observed),
            "past": take(new.past), "future": take(new.future),
            "static": static if codes is None else static[torch.from_numpy(codes)]}
