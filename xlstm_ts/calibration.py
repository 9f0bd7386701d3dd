"""Calibrated forecast bands: quantiles of a model's own errors on data it did not
train on, in units of each window's step-to-step change.

A forecast made from a window whose observed history moves by ``s`` per step on
average (its mean absolute one-step change: the scale of MASE) has, for a level
``L`` percent at horizon step ``h``, the band ``point -/+ s * r(h, L)``, where
``r(h, L)`` is the ``L`` percent quantile of the absolute errors
``|actual - point| / s`` measured at step ``h`` on held-out windows: the validation
windows of ``fit`` or the backtest windows of ``conformalize`` (split-conformal
prediction; with ``n`` errors the quantile is taken at ``L (n + 1) / n``, the usual
finite-sample correction). Dividing by ``s`` pools the errors of series of any size
into one distribution, so a panel calibrates each series with the evidence of all.

The scale and the symmetric form were chosen on validation splits over the window's
standard deviation and over signed errors (``docs/decisions.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PROBABILITIES = np.linspace(0.0, 1.0, 201)  # the stored grid of levels (0.5% apart)
SOURCES = ("validation", "backtest")


def spread(values: np.ndarray, observed: np.ndarray) -> np.ndarray:
    """(B,) the mean absolute change between consecutive observed steps of each row of
    ``values`` (B, L) (``observed`` (B, L) marks them), in data units: the scale a
    window's errors are measured in. A window without change (flat, or one point)
    takes its mean magnitude instead, an all-zero (or empty) one 1, so no error is
    divided by zero."""
    x = np.asarray(values, dtype=np.float64)
    observed = np.asarray(observed, dtype=bool)
    pairs = observed[:, 1:] & observed[:, :-1]
    change = np.where(pairs, np.abs(np.diff(x, axis=1)), 0.0).sum(axis=1)
    change /= np.maximum(pairs.sum(axis=1), 1)
    magnitude = np.where(observed, np.abs(x), 0.0).sum(axis=1)
    magnitude /= np.maximum(observed.sum(axis=1), 1)
    return spread_from_moments(change, magnitude)


def last_spread(data, lookback: int) -> np.ndarray:
    """(n,) the spread of each series' last ``lookback`` steps of ``data`` (a
    :class:`xlstm_ts.data.SeriesData`): the scale its forecast's band is measured in."""
    import torch

    from .data import last_windows

    window = last_windows(data, lookback, torch.zeros(data.n_series, 0, data.future.shape[1]))
    return spread(window["history"].numpy(), window["history_mask"].numpy())


def spread_from_moments(change: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """The spread of windows of mean absolute change ``change`` and mean magnitude
    ``magnitude`` (both (B,)): the change, or the magnitude where the window does not
    move (below a millionth of it), or 1 where both are 0."""
    still = change <= 1e-6 * magnitude
    return np.where(still, np.where(magnitude > 0, magnitude, 1.0), change)


@dataclass(frozen=True)
class BandCalibration:
    """Quantiles of normalised absolute forecast errors by horizon step.

    ``offsets`` (H, P): at step h, the ``PROBABILITIES`` quantiles of
    ``|actual - point| / spread`` over the held-out windows (finite-sample widened);
    ``n_errors`` (H,): how many errors each step had; ``source``: ``"validation"``
    (fit) or ``"backtest"`` (conformalize).
    """

    offsets: np.ndarray
    n_errors: np.ndarray
    source: str

    @classmethod
    def from_errors(cls, errors: np.ndarray, source: str) -> BandCalibration:
        """From normalised errors (N windows, H steps; their sign is dropped), NaN where
        a window had no actual at a step. A step without any error takes the nearest
        earlier step's quantiles."""
        if source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}. Got {source!r}.")
        errors = np.abs(np.asarray(errors, dtype=np.float64))
        if errors.ndim != 2 or not np.isfinite(errors).any():
            raise ValueError("BandCalibration needs a (windows, horizon) array with at least "
                             "one finite error.")
        horizon = errors.shape[1]
        offsets = np.full((horizon, len(PROBABILITIES)), np.nan)
        counts = np.zeros(horizon, dtype=np.int64)
        for h in range(horizon):
            e = errors[:, h][np.isfinite(errors[:, h])]
            counts[h] = len(e)
            if len(e):
                offsets[h] = np.quantile(e, np.minimum(PROBABILITIES * (len(e) + 1) / len(e),
                                                       1.0))
        filled = np.flatnonzero(counts)
        for h in np.flatnonzero(counts == 0):
            earlier = filled[filled < h]
            offsets[h] = offsets[earlier[-1] if len(earlier) else filled[0]]
        return cls(offsets, counts, source)

    @property
    def horizon(self) -> int:
        return self.offsets.shape[0]

    def halfwidth(self, level: float, horizon: int) -> np.ndarray:
        """(horizon,) the ``level`` percent quantile of the normalised absolute errors at
        each step; steps past the calibrated horizon reuse the last one."""
        row = np.array([np.interp(level / 100, PROBABILITIES, self.offsets[h])
                        for h in range(self.horizon)])
        return row[np.minimum(np.arange(horizon), self.horizon - 1)]

    def band(self, point: np.ndarray, scale: np.ndarray, level: float
             ) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each like ``point`` (n, horizon): the ``level`` percent band around
        ``point`` for windows of spread ``scale`` (n,)."""
        half = np.asarray(scale, dtype=np.float64)[:, None] * self.halfwidth(level,
                                                                              point.shape[1])
        return point - half, point + half

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain arrays for the saved model (see :meth:`from_arrays`)."""
        return {"band_offsets": self.offsets, "band_counts": self.n_errors,
                "band_source": np.array([SOURCES.index(self.source)])}

    @classmethod
    def from_arrays(cls, arrays: dict) -> BandCalibration | None:
        """Back from :meth:`to_arrays` (None where the model had no calibration)."""
        if "band_offsets" not in arrays:
            return None
        return cls(np.asarray(arrays["band_offsets"], dtype=np.float64),
                   np.asarray(arrays["band_counts"], dtype=np.int64),
                   SOURCES[int(np.asarray(arrays["band_source"])[0])])
