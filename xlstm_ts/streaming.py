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
update, and the compiled step fuses them (``benchmarks/results/streaming-cpu.md``).
Where every series steps at once and the horizon needs no covariates from the caller,
the compiled step also makes the forecast from the new state (:class:`StreamForecast`),
which ``predict()`` returns instead of running the head again. The first compiled call
takes seconds (a C++ compiler builds the kernels on CPU); where compiling fails, the
eager step is used and a warning says why.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .data import (
    SeriesData,
    append_observations,
    continue_series,
    every_series_in_order,
    future_covariates,
)
from .inference import PREDICT_CHUNK, advance_and_forecast, advance_state, encoded_state

log = logging.getLogger("xlstm_ts")


@dataclass(frozen=True, eq=False)  # compared by identity: it holds tensors
class StreamForecast:
    """The forecast made by the compiled step from the stream ``state`` it produced:
    current while that very state is the carried one."""

    state: dict
    quantiles: tuple[float, ...] | None
    point: torch.Tensor  # (n, H) data units
    quant: torch.Tensor | None  # (n, H, Q)

    def for_predict(self, state: dict | None, horizon: int,
                    quantiles: tuple[float, ...] | None):
        """Point (n, H) and quantiles, or None where this forecast does not answer a
        predict from ``state``: another state, other quantiles or another horizon (a
        shorter one pads the horizon's covariates, which the head sees whole)."""
        if state is not self.state or horizon != self.point.shape[1] \
                or quantiles != self.quantiles:
            return None
        return self.point, self.quant


def absorb(net, fitted: SeriesData, new: SeriesData, lookback: int, state: dict | None, *,
           skip_seen: bool = False, compile: bool = False, progress: bool = False,
           horizon: int | None = None, quantiles: tuple[float, ...] | None = None
           ) -> tuple[SeriesData, dict | None, StreamForecast | None]:
    """``fitted`` with the rows of ``new`` appended (each series' last ``lookback`` kept)
    and the stream ``state`` advanced over them (None for networks without one), by
    the compiled step when ``compile`` (:class:`_Compiled`); with ``horizon``,
    the compiled step also forecasts from the new state where one network call can
    (every series, at most ``PREDICT_CHUNK``, steps the same number of rows, and the
    horizon needs no covariates from the caller), else the forecast returned is None.

    Everything is computed before anything is replaced: a failure leaves the caller's
    model as it was. A state of None is first encoded from the current windows."""
    new, codes, skipped = continue_series(fitted, new, skip_seen=skip_seen)
    if skipped:
        log.info("update: %d rows were already absorbed and are left out", skipped)
    if not new.n_series:
        return fitted, state, None
    forecast = None
    if net.streaming:  # inference mode: no autograd bookkeeping (about a third of a step)
        with torch.inference_mode():
            compiled = _compiled(net) if compile else None
            state, forecast = _advanced(net, fitted, new, codes, lookback, state,
                                        compiled, progress, horizon, quantiles)
    return append_observations(fitted, new, codes, keep=lookback), state, forecast


def _advanced(net, fitted: SeriesData, new: SeriesData, codes: np.ndarray, lookback: int,
              state: dict | None, compiled: _Compiled | None, progress: bool,
              horizon: int | None = None, quantiles: tuple[float, ...] | None = None
              ) -> tuple[dict, StreamForecast | None]:
    """The stream ``state`` advanced over the rows of ``new`` (series j continuing
    fitted series ``codes[j]``) by ``net.advance`` or its ``compiled`` form; a state of
    None is first encoded from ``fitted``. With ``compiled`` and ``horizon``, also the
    forecast from the new state where one compiled call can make it, else None."""
    fresh = state is None  # a state of our own, safe to write into
    state = encoded_state(net, fitted, lookback, progress) if fresh else state
    n_state = next(iter(state.values())).shape[0]
    groups = np.unique(new.lengths)  # series with equal counts of new steps
    if compiled is not None and horizon is not None and len(groups) == 1 \
            and n_state <= PREDICT_CHUNK and every_series_in_order(codes, n_state) \
            and not fitted.columns.given_future:  # one network call: state and forecast
        steps = _steps(new, np.arange(len(codes)), int(groups[0]), fitted.static, None)
        ahead = future_covariates(fitted, new, None, horizon)  # after the new ends
        advanced, point, quant = compiled.forecast(net, state, steps, ahead, quantiles)
        return advanced, StreamForecast(advanced, quantiles, point, quant)
    advance = net.advance if compiled is None else compiled.advance_of(net)
    for T in groups:
        group = np.flatnonzero(new.lengths == T)
        every = every_series_in_order(codes[group], n_state)
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
    return state, None


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


# network class -> its compiled steps. The class's function is compiled, not an
# instance's bound method, so the cache holds no network alive; dynamo's guards tell
# instances of other shapes apart
_COMPILED: dict[type, _Compiled] = {}


def _compiled(net) -> _Compiled:
    """The compiled steps of ``net``'s class, compiled on first use; the eager ones
    (with a warning, once) where compiling fails."""
    kind = type(net)
    if kind not in _COMPILED:
        _COMPILED[kind] = _Compiled(kind.advance)
    return _COMPILED[kind]


class _Compiled:
    """Calls the compiled steps: ``advance(net, state, steps)`` and
    :func:`~xlstm_ts.inference.advance_and_forecast`. Where one raises and its eager
    form does not, the compiler was at fault: warn once and keep to the eager steps.
    Where both raise, the inputs were: the eager step's error propagates."""

    def __init__(self, advance: Callable):
        self._eager = {"advance": advance, "forecast": advance_and_forecast}
        # dynamo's guards already check every input's shape and strides, so inductor's
        # per-input size asserts are redundant (one series: about a sixth of the step)
        self._compiled = {name: torch.compile(fn, options={"size_asserts": False})
                          for name, fn in self._eager.items()}

    def advance_of(self, net) -> Callable:
        """``net.advance`` as ``(state, steps) -> state``, compiled."""
        return lambda state, steps: self._call("advance", net, state, steps)

    def forecast(self, net, state: dict, steps: dict, ahead: torch.Tensor,
                 quantiles: tuple[float, ...] | None):
        """:func:`~xlstm_ts.inference.advance_and_forecast`, compiled."""
        return self._call("forecast", net, state, steps, ahead, quantiles)

    def _call(self, name: str, *args):
        if self._compiled is None:
            return self._eager[name](*args)
        try:
            return self._compiled[name](*args)
        except Exception as err:
            result = self._eager[name](*args)
            self._compiled = None
            warnings.warn(f"update(compile=True): torch.compile failed ({type(err).__name__}: "
                          f"{str(err).splitlines()[0][:200]}); using the eager step.",
                          RuntimeWarning, stacklevel=3)
            return result
