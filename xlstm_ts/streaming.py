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

``compile=True`` runs the one-step advance through ``torch.compile``: one network
step is a few hundred small operations, whose dispatch dominates a single series'
update, and the compiled step fuses them (one series, inputs + advance: 0.92 -> 0.40
ms in a run of calls, ``benchmarks/streaming.py``). The first compiled call takes
seconds (a C++ compiler builds the kernels on CPU); where compiling fails, the eager
step is used and a warning says why.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable

import numpy as np
import torch

from .data import SeriesData, append_observations, continue_series
from .inference import advance_state, encoded_state

log = logging.getLogger("xlstm_ts")


def absorb(net, fitted: SeriesData, new: SeriesData, lookback: int, state: dict | None, *,
           skip_seen: bool = False, compile: bool = False, progress: bool = False
           ) -> tuple[SeriesData, dict | None]:
    """``fitted`` with the rows of ``new`` appended (each series' last ``lookback`` kept)
    and the stream ``state`` advanced over them (None for networks without one), by
    the compiled step when ``compile`` (:func:`compiled_advance`).

    Everything is computed before anything is replaced: a failure leaves the caller's
    model as it was. A state of None is first encoded from the current windows."""
    new, codes, skipped = continue_series(fitted, new, skip_seen=skip_seen)
    if skipped:
        log.info("update: %d rows were already absorbed and are left out", skipped)
    if not new.n_series:
        return fitted, state
    if net.streaming:  # inference mode: no autograd bookkeeping (about a third of a step)
        with torch.inference_mode():
            advance = compiled_advance(net) if compile else net.advance
            state = _advanced(net, fitted, new, codes, lookback, state, advance, progress)
    return append_observations(fitted, new, codes, keep=lookback), state


def _advanced(net, fitted: SeriesData, new: SeriesData, codes: np.ndarray, lookback: int,
              state: dict | None, advance: Callable, progress: bool) -> dict:
    """The stream ``state`` advanced over the rows of ``new`` (series j continuing
    fitted series ``codes[j]``) by ``advance`` (``net.advance`` or its compiled form);
    a state of None is first encoded from ``fitted``."""
    fresh = state is None  # a state of our own, safe to write into
    state = encoded_state(net, fitted, lookback, progress) if fresh else state
    n_state = next(iter(state.values())).shape[0]
    for T in np.unique(new.lengths):  # series with equal counts of new steps
        group = np.flatnonzero(new.lengths == T)
        every = len(group) == n_state and np.array_equal(codes[group], np.arange(n_state))
        advanced = advance_state(net, state, _steps(new, group, int(T), fitted.static,
                                                    None if every else codes[group]),
                                 codes[group], advance)
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


# network class -> its compiled advance. The class's function is compiled, not an
# instance's bound method, so the cache holds no network alive; dynamo's guards tell
# instances of other shapes apart
_COMPILED: dict[type, _Compiled] = {}


def compiled_advance(net) -> Callable:
    """``net.advance`` through ``torch.compile``, compiled on first use (per network
    class); the eager ``net.advance`` (with a warning, once) where compiling fails."""
    kind = type(net)
    if kind not in _COMPILED:
        _COMPILED[kind] = _Compiled(kind.advance)
    compiled = _COMPILED[kind]
    return lambda state, steps: compiled(net, state, steps)


class _Compiled:
    """Calls the compiled ``advance(net, state, steps)``. Where it raises and the eager
    step does not, the compiler was at fault: warn once and keep to the eager step.
    Where both raise, the inputs were: the eager step's error propagates."""

    def __init__(self, advance: Callable):
        self._eager = advance
        self._compiled = torch.compile(advance)

    def __call__(self, net, state: dict, steps: dict) -> dict:
        if self._compiled is None:
            return self._eager(net, state, steps)
        try:
            return self._compiled(net, state, steps)
        except Exception as err:
            advanced = self._eager(net, state, steps)
            self._compiled = None
            warnings.warn(f"update(compile=True): torch.compile failed ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]}); using the eager step.",
                          RuntimeWarning, stacklevel=2)
            return advanced
