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
validation windows: the start, the blend and early stopping were chosen on them,
and the next windows broke them. ETT fitted on its train rows and scored on its
validation rows, MSE with one horizon / a tenth / a fifth of validation (seed 0;
rows in ``benchmarks/results/accuracy-explore.jsonl``):

    ETTh1  96: 0.664 / 0.675 / 0.686   192: 0.926 / 0.914 / 0.925
          336: 1.274 / 1.158 / 1.153   720: 1.999 / 1.415 / 1.410
    ETTm1  96: 0.366 / 0.362 / 0.371   720: 0.970 / 0.950 / 0.953

(the linear floor on ETTh1: 0.667 / 0.916 / 1.165 / 1.423). On M4 Hourly (414
series) longer validation scored worse on its validation split (sMAPE / MASE 11.71 /
0.850 with one horizon, 11.93 / 0.855 with a tenth, 12.02 / 0.858 with a fifth) and
fitted slower.

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
# cycles, at most LONG_LOOKBACK steps, once the horizon is a quarter cycle or more. The
# ridge floor on ETTm1's folds (fitted before, scored on the next 2,880 hours; MSE at
# horizon 720 with 512 / 1024 steps): 0.643 / 0.633, 0.609 / 0.592, 0.949 / 0.898.
# The whole forecaster on ETTm1's validation rows (fitted on its train rows), 512
# steps against the longer lookback: 0.651 / 0.633 (1024) at horizon 336, 0.950 /
# 0.911 (1024) at 720, 0.362 / 0.367 (1024) at 96 (seed 0). Two full weeks (1344
# steps, 64-step patches) against the 1024 of the earlier cap, seeds 0-2: 0.6381 /
# 0.6207 / 0.6235 against 0.6334 / 0.6389 / 0.6301 at 336, 0.8926 / 0.8995 / 0.8917
# against 0.9110 / 0.9196 / 0.9181 at 720 (fits 118-203 s); against 512 in 16-step
# patches at 192: 0.4852 / 0.4800 / 0.4808 against 0.4938 / 0.4887 / 0.4943 (768
# steps in 24-step patches had lost there, 0.503 against 0.497; 336 steps scored
# 0.4867 / 0.4881 / 0.4878), but 0.3576 against 0.3556 at 96 (seed 0): the
# longer lookback starts between 96 and 192 steps of horizon, a quarter of the
# cycle (168). The ridge floor agrees where the fit has the data
# (benchmarks/ridge_folds.py of 2026-12-06, errors in series-standardised units; MSE
# 1344 / 1024 steps at 336 and 720: 0.6268 / 0.6340 and 0.8809 / 0.8976 fitted on
# 34,560 steps, level on 23,040, 0.3262 / 0.3268 and 0.3897 / 0.3857 on 11,520).
# On hourly data two cycles are 336 steps and the rule is unchanged: 1024 steps of
# ETTh1 (six weeks) lost to 512 on every fold (1.135 / 1.343, 0.762 / 0.815, 1.417 /
# 1.439 at 720). Shorter series need the shorter map: fitted on ETTm1's first 30 / 60
# days (2,880 / 5,760 steps), the ridge floor at 720 scored 0.606 / 0.366 with 512
# steps and 0.891 / 0.405 with 1024 (at 120 days, 11,520 steps: 0.643 / 0.633, the
# first fold above), so the longer lookback needs a median series of
# LONG_LOOKBACK_SPANS of it. Rows in benchmarks/results/accuracy-explore.jsonl.
LONG_LOOKBACK = 1344
LONG_LOOKBACK_SPANS = 10
# Patches of at most FINE_PATCH steps (PatchTST's 16, stride 8) where the fit has at
# least MANY_WINDOWS training windows and the lookback is at most MAX_LOOKBACK: 63
# patches of 512 steps instead of 41. ETTm1's validation rows (fitted on its train
# rows, 239k windows), MSE with 16 / 24 steps: 0.3556 / 0.3578 (seed 0) and 0.3564 /
# 0.3612 (seed 1) at horizon 96, 0.4938 / 0.4969-0.4993 at 192 (seed 0); the test
# fits took 276-370 s against 159-214. Smaller data keeps the coarser patches: on
# ETTh1 (under 70k windows) 16 steps scored 0.6717 / 0.6742 at 96, level at 192 and
# 720, and 1.1770 / 1.1582 at 336. Finer still lost: 12 steps (stride 6) scored 0.3601
# at 96 and 0.4989 at 192 (seed 0). The long lookback keeps about 40 patches: at
# 1024 steps, 32-step patches (stride 16, 63 patches) against 48 on ETTm1's
# validation rows, seeds 0 / 1: 0.6218 / 0.6391 against 0.6334 / 0.6389 at 336,
# 0.9307 / 0.9208 against 0.9110 / 0.9196 at 720, with fits 1.1-2.5x longer. M4
# Hourly's lookback of 336 already has 16. Rows in accuracy-explore.jsonl.
FINE_PATCH = 16


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


# Chosen on validation splits (benchmarks/validation.py, accuracy.py; the rows in
# benchmarks/results/accuracy-explore.jsonl). Without covariates the xLSTM refines a
# linear start, and 3e-3 (with dropout 0) validated better than 1e-2 on M4 Hourly
# (sMAPE / MASE 12.81 / 0.908 against 13.23 / 0.967), M3 Yearly (20.76 / 3.600 against
# 21.71 / 3.672) and ETTh1 at horizon 192 (MSE 0.9045 against 0.9122: the correction
# now beats its start). Covariate effects are learned by the xLSTM alone, and on a
# panel with a future-known promotion 3e-3 learned them too slowly (validation MAE
# 0.463 against 0.199 at 1e-2; 0.283 with 60 epochs), so fits with covariates keep 1e-2.
LEARNING_RATE = 3e-3
LEARNING_RATE_WITH_COVARIATES = 1e-2


def default_learning_rate(n_covariates: int) -> float:
    """The learning rate when the caller leaves it to the library: ``n_covariates``
    counts the future-known, past and static inputs (calendar features included)."""
    return LEARNING_RATE_WITH_COVARIATES if n_covariates else LEARNING_RATE


# Chosen on M3 Yearly's validation split (the last 6 years of its training series;
# benchmarks/validation.py, rows in benchmarks/results/accuracy-explore.jsonl): 3
# members scored sMAPE 21.15 and 20.90 (seeds 0 and 1) where single fits scored
# 21.69, 23.76, 21.42 and 20.80 (seeds 0-3; naive 21.45). With the defaults of
# 2026-12-05, 1 / 3 / 5 members: 20.04 / 19.85 / 19.45 (seed 0) and 20.01 / 19.78 /
# 19.58 (seed 1), MASE 3.542 / 3.483 / 3.368 and 3.415 / 3.378 / 3.383; five fits of
# 645 short series take about 110 s on 2 cores. Long series keep one
# network: ETT and M4 Hourly fits would take 3x their 2-5 minutes.
SHORT_DATA_MEMBERS = 5

# Chosen on M4 Hourly's validation split (the last 48 hours of its training series):
# 3 members scored sMAPE / MASE 11.71 / 0.850 (seed 0) and 11.80 / 0.843 (seed 1), one
# member 12.08 / 0.855 and 12.15 / 0.865; fits of 414 series take about 7.5 minutes
# instead of 2.5. ETT's 7 channels keep one member: at horizons 192-720 every seed
# keeps the linear start, which members share, and ETTm1 fits would take 7-10 minutes.
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
        from .training.datamodule import MANY_WINDOWS  # here: loading presets loads no Lightning

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
