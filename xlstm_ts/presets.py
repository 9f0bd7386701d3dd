"""Defaults that fit the data: the window shape chosen from the horizon, the
frequency and the series' lengths when the caller leaves it to the library.

The rule (``lookback``, ``patch_len``, ``patch_stride`` left as None):

- the *cycle* of the frequency: a week of steps for hourly and finer data (168
  hourly, 672 quarter-hourly), 7 for daily, 5 for business days, 52 weekly, 12
  monthly, 4 quarterly, 1 yearly or for an integer index;
- ``lookback = min(512, max(4 * horizon, 2 * cycle, 16))``; at horizons of at least
  a quarter of a cycle, two cycles where that is longer, at most 1344, if the median
  series holds ten such lookbacks (data finer than hourly: two weeks of
  quarter-hours are 1344 steps; see ``LONG_LOOKBACK``); then at most what the
  longest series holds before its horizon and validation steps;
- series shorter than ``lookback + horizon + val_size`` are not rejected: their
  windows are left-padded and masked, and every window keeps at least the history
  the shortest series has before its horizon and validation steps (at least one
  step); a series too short for both a training and a validation window serves the
  one it has room for, and only series shorter than ``horizon + 1`` are rejected;
- patches: ``patch_len = clip(lookback // 20, 1, max(24, lookback // 21))`` (16 for
  a lookback of 336, as PatchTST; 24 at 512; 64 at 1344, so that a longer lookback
  keeps about 40 patches), and at most 16 where the fit has at least 100,000
  training windows and a lookback of at most 512 (``FINE_PATCH``; ETTm1 at horizon
  96); ``patch_stride = max(1, patch_len // 2)``.

The validation split (``val_size`` left as None): ``horizon`` steps on short data
(the median series shorter than ``lookback + 2 * horizon``: every step is needed
for training) and on panels of at least ``PANEL_SERIES`` series (one window per
series is already hundreds of windows); else a tenth of the median series, at least
``horizon`` and at most what leaves the median series a full window (``lookback +
horizon``) to train on. One horizon of a few long series (ETT's 7 channels) is 7
validation windows, too few to choose on (the evidence:
``docs/decisions.md``, "Validation split").

The ensemble size (``n_models`` left as None): 5 members when the median series is
shorter than the lookback plus the horizon and validation steps (most windows are
left-padded: fits are cheap, and with so little data a single fit varies most with
its seed); 3 on panels of at least 100 longer series (the trained network carries
those forecasts, and each member's training is bounded by ``max_epochs`` epochs of
at most 100 batches, so 3 members cost about 3 single fits); else 1 (a few channels
of one system, like ETT's 7, where the linear start carries the long horizons).

On short data the linear start stays the one solved on the training windows;
elsewhere, once validation has chosen it, it is solved again with the validation
windows (:func:`xlstm_ts.training.linear_start.refit_map`).

Measured on the bundled datasets in ``benchmarks/results/`` (see the README).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .data import Frequency

_HOUR_US = 3_600_000_000
MAX_LOOKBACK = 512
# Long horizons on data finer than hourly (a week is 672 quarter-hours) look back two
# cycles, at most LONG_LOOKBACK steps, once the horizon is a quarter cycle or more and
# the median series holds LONG_LOOKBACK_SPANS such lookbacks: longer maps need the data
# to fit them. Evidence: docs/decisions.md ("Long lookback").
LONG_LOOKBACK = 1344
LONG_LOOKBACK_SPANS = 10
# Patches of at most FINE_PATCH steps (PatchTST's 16, stride 8) where the fit has at
# least MANY_WINDOWS training windows and the lookback is at most MAX_LOOKBACK: finer
# patches pay only with much data. Evidence: docs/decisions.md ("Fine patches").
FINE_PATCH = 16
# Epoch length when left to the library: BATCHES_PER_EPOCH batches, twice that on panels
# of at least MANY_WINDOWS training windows, where 20 epochs of 50 were still improving.
# Evidence: docs/decisions.md ("Epoch length").
BATCHES_PER_EPOCH = 50
MANY_WINDOWS = 100_000


@dataclass(frozen=True)
class WindowShape:
    """The resolved window: steps of history, patching, and the fewest real history
    steps a training window needs (below ``lookback`` it is left-padded)."""

    lookback: int
    patch_len: int
    patch_stride: int
    min_history: int
    min_length: int  # shorter series are rejected (named)


def cycle_length(freq: Frequency | None) -> int:
    """Steps in the natural cycle of ``freq`` (a week for hourly and finer data and
    for business days)."""
    if freq is None or freq.kind == "index":
        return 1
    if freq.kind == "months":
        return {1: 12, 3: 4}.get(freq.step, 1)
    if freq.kind == "business_days":
        return 5 if freq.step == 1 else 1
    if freq.step <= _HOUR_US:
        return max(1, 168 * _HOUR_US // freq.step)
    days = freq.step / (24 * _HOUR_US)
    return {1: 7, 7: 52}.get(round(days), 1) if days == round(days) else 1


def seasonal_periods(freq: Frequency | None) -> tuple[int, ...]:
    """Periods (in steps) of the usual cycles of ``freq``: a day and a week for
    sub-daily data (24 and 168 hourly), a week for daily and business-day data
    (7 and 5 steps), a year for weekly, monthly
    and quarterly data; none for yearly data or an integer index. The linear start
    offers the seasonal naive forecast of each as a candidate
    (:func:`xlstm_ts.training.linear_start.naive_maps`)."""
    if freq is None or freq.kind == "index":
        return ()
    if freq.kind == "months":
        return {1: (12,), 3: (4,)}.get(freq.step, ())
    if freq.kind == "fixed" and freq.step < 24 * _HOUR_US and (24 * _HOUR_US) % freq.step == 0:
        day = 24 * _HOUR_US // freq.step
        return (day, 7 * day) if day > 1 else (7 * day,)
    return (cycle_length(freq),) if cycle_length(freq) > 1 else ()


# Without covariates the xLSTM refines a linear start and the lower rate validated
# better; covariate effects are learned by the xLSTM alone, and the lower rate learned
# them too slowly, so fits with covariates keep the higher one. Evidence:
# docs/decisions.md ("Learning rate").
LEARNING_RATE = 3e-3
LEARNING_RATE_WITH_COVARIATES = 1e-2


def default_learning_rate(n_covariates: int) -> float:
    """The learning rate when the caller leaves it to the library: ``n_covariates``
    counts the future-known, past and static inputs (calendar features included)."""
    return LEARNING_RATE_WITH_COVARIATES if n_covariates else LEARNING_RATE


# Short data (most windows padded): fits are cheap and a single fit varies most with
# its seed, so the median of several members. Evidence: docs/decisions.md ("Members on
# short data").
SHORT_DATA_MEMBERS = 5

# Panels of many longer series: the trained network carries the forecasts, and a few
# members steady it at a bounded cost; a few channels of one system keep one member.
# Evidence: docs/decisions.md ("Members on panels").
PANEL_MEMBERS = 3
PANEL_SERIES = 100

# The validation share of long series with few of them (see the module docstring:
# a tenth beat one horizon and a fifth on ETTh1 and ETTm1's validation rows).
VAL_FRACTION = 0.1


def default_val_size(lookback: int | None, *, horizon: int, freq: Frequency | None,
                     lengths: np.ndarray) -> int:
    """Validation steps per series when the caller leaves it to the library (see the
    module docstring): ``horizon`` on short data and on panels of ``PANEL_SERIES`` or
    more series (``lengths`` holds each series' steps), else ``VAL_FRACTION`` of the
    median length within ``[horizon, median - lookback - horizon]``. ``lookback``
    None: the rule's lookback for one horizon of validation."""
    if lookback is None:
        lookback = resolve_window(None, None, None, horizon=horizon, val_size=horizon,
                                  freq=freq, lengths=lengths).lookback
    if len(lengths) >= PANEL_SERIES or mostly_padded(
            lookback=lookback, horizon=horizon, val_size=horizon, lengths=lengths):
        return horizon
    median = int(np.median(lengths))
    room = median - lookback - horizon
    return max(horizon, min(round(VAL_FRACTION * median), room))


def mostly_padded(*, lookback: int, horizon: int, val_size: int,
                  lengths: np.ndarray) -> bool:
    """Whether the median series (``lengths``, steps) is shorter than ``lookback +
    horizon + val_size``, so that most windows are left-padded: short data."""
    return bool(np.median(lengths) < lookback + horizon + val_size)


def default_n_models(*, lookback: int, horizon: int, val_size: int,
                     lengths: np.ndarray) -> int:
    """The ensemble size when the caller leaves it to the library: ``SHORT_DATA_MEMBERS``
    on short data (:func:`mostly_padded`), ``PANEL_MEMBERS`` on panels of at least
    ``PANEL_SERIES`` series (``lengths`` holds one entry per series), else 1."""
    if mostly_padded(lookback=lookback, horizon=horizon, val_size=val_size, lengths=lengths):
        return SHORT_DATA_MEMBERS
    return PANEL_MEMBERS if len(lengths) >= PANEL_SERIES else 1


def resolve_window(lookback: int | None, patch_len: int | None, patch_stride: int | None,
                   *, horizon: int, val_size: int, freq: Frequency | None,
                   lengths: np.ndarray) -> WindowShape:
    """The window shape for a fit: given values are kept, None ones follow the rule."""
    needed = horizon + val_size
    if lookback is None:
        cycle = cycle_length(freq)
        preferred = min(MAX_LOOKBACK, max(4 * horizon, 2 * cycle, 16))
        longer = min(2 * cycle, LONG_LOOKBACK)  # two cycles, if finer data has room
        if 4 * horizon >= cycle and np.median(lengths) >= LONG_LOOKBACK_SPANS * longer:
            preferred = max(preferred, longer)
        available = int(lengths.max()) - needed
        if available < 1:
            raise ValueError(f"Every series is shorter than horizon + val_size + 1 = "
                             f"{needed + 1} steps; nothing to fit. Lower horizon or val_size.")
        lookback = min(preferred, available)
        min_history = max(1, min(lookback, int(lengths.min()) - needed))
        min_length = min_history + horizon
    else:
        min_history = lookback  # an explicit lookback asks for full windows
        min_length = lookback + needed
    if patch_len is None:
        patch_len = int(np.clip(lookback // 20, 1, max(24, lookback // 21)))
        # training windows as WindowDataset counts them: cutoffs from min_history on
        windows = np.maximum(lengths - needed - min_history + 1, 0).sum()
        if lookback <= MAX_LOOKBACK and windows >= MANY_WINDOWS:
            patch_len = min(patch_len, FINE_PATCH)  # much data: finer patches pay
    if patch_stride is None:
        patch_stride = max(1, patch_len // 2)
    return WindowShape(lookback, min(patch_len, lookback), patch_stride, min_history,
                       min_length)


def pretrained_lookback(context_len: int, patch_size: int, horizon: int) -> int:
    """The context of a fine-tuning window for a pretrained network: four horizons,
    at most a quarter of the network's context, at least one patch, in whole
    patches (a quarter keeps a CPU fine-tune to minutes; forecasts still read the
    network's full context)."""
    steps = min(max(4 * horizon, patch_size), max(context_len // 4, patch_size))
    return -(-steps // patch_size) * patch_size


def default_batches_per_epoch(n_windows: int) -> int:
    """Batches per epoch for a panel of ``n_windows`` training windows:
    ``2 * BATCHES_PER_EPOCH`` from ``MANY_WINDOWS`` on, else ``BATCHES_PER_EPOCH``."""
    return 2 * BATCHES_PER_EPOCH if n_windows >= MANY_WINDOWS else BATCHES_PER_EPOCH


def ema_decay_for(steps_per_epoch: int) -> float:
    """The moving average's decay when left to the library: ``1 - 1 / (2 *
    steps_per_epoch)``, an average over about the last two epochs (0.99 for 50
    batches per epoch, 0.995 for 100). Tied to the epoch rather than fixed so that a fit of
    a few steps per epoch (a single short series) still moves away from its start.

    Evidence: ``docs/decisions.md`` ("Weight averaging")."""
    return 1.0 - 0.5 / max(1, steps_per_epoch)


@dataclass(frozen=True)
class Resolved:
    """The data-fitted defaults of one fit, resolved together (:func:`resolve`)."""

    val_size: int  # validation steps per series
    window: WindowShape
    short: bool  # most windows left-padded (:func:`mostly_padded`)
    n_models: int
    learning_rate: float
    seasons: tuple[int, ...]  # seasonal-naive periods the linear start offers


def resolve(*, lookback: int | None, patch_len: int | None, patch_stride: int | None,
            horizon: int, val_size: int | None, n_models: int | None,
            learning_rate: float | None, season_length: int | None,
            freq: Frequency | None, lengths: np.ndarray, n_covariates: int) -> Resolved:
    """Every data-fitted default of a fit in one call: what the caller set is kept,
    None follows this module's rules for data of frequency ``freq`` whose series
    have ``lengths`` steps, with ``n_covariates`` covariate columns. The epoch length
    and the weight-average decay depend on the training windows as batched, so the
    training data module applies :func:`default_batches_per_epoch` and
    :func:`ema_decay_for` itself."""
    if val_size is None:
        val_size = default_val_size(lookback, horizon=horizon, freq=freq, lengths=lengths)
    window = resolve_window(lookback, patch_len, patch_stride, horizon=horizon,
                            val_size=val_size, freq=freq, lengths=lengths)
    short = mostly_padded(lookback=window.lookback, horizon=horizon, val_size=val_size,
                          lengths=lengths)
    if n_models is None:
        n_models = default_n_models(lookback=window.lookback, horizon=horizon,
                                    val_size=val_size, lengths=lengths)
    return Resolved(
        val_size=val_size, window=window, short=short, n_models=n_models,
        learning_rate=(default_learning_rate(n_covariates) if learning_rate is None
                       else float(learning_rate)),
        seasons=seasonal_periods(freq) if season_length is None else (season_length,))
