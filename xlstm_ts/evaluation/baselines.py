"""Reference forecasters with the estimator interface: naive, seasonal naive, drift.

They anchor every claim that a model learned something: a forecast that does
not beat seasonal naive has learned nothing worth its cost.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import polars as pl
from sklearn.exceptions import NotFittedError

from .._checks import check_positive_int
from ..data.frames import PRED_COL, FrameLike, from_polars
from ..data.panel import SeriesData
from ..data.series import prepare_series


class _Baseline:
    """``fill_missing``: as the forecaster's, for gaps in the time grid (``"nan"``,
    ``"ffill"`` or ``"zero"``); a missing value then repeats the last observed one
    before it (a series' leading missing values the first observed)."""

    def __init__(self, *, id_col: str = "unique_id", time_col: str = "ds",
                 target_col: str = "y", fill_missing: str | None = None):
        self.id_col = id_col
        self.time_col = time_col
        self.target_col = target_col
        self.fill_missing = fill_missing

    def fit(self, df: FrameLike):
        """Learn the last values of each series of the long frame ``df``."""
        self.data_: SeriesData = prepare_series(df, id_col=self.id_col, time_col=self.time_col,
                                                target_col=self.target_col,
                                                fill_missing=self.fill_missing)
        self._check_lengths(self.data_.lengths)
        return self

    def _check_lengths(self, lengths: np.ndarray) -> None:
        pass

    def _forecast(self, series: list[np.ndarray], horizon: int) -> np.ndarray:
        raise NotImplementedError

    def predict(self, horizon: int):
        """Forecast ``horizon`` steps after each series' end: a long frame with
        ``id_col``, ``time_col`` and ``y_pred``, in the library ``fit`` was given."""
        if not hasattr(self, "data_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. "
                               "Call 'fit' with appropriate arguments first.")
        check_positive_int("horizon", horizon)
        data = self.data_
        if data.freq is None:
            raise ValueError("Cannot step time forward: every series has a single point.")
        y = _carried_forward(data.target.double().numpy(), data.observed.numpy(),
                             data.indptr)
        series = [y[a:b] for a, b in zip(data.indptr[:-1], data.indptr[1:], strict=True)]
        values = self._forecast(series, horizon)  # (n, H)
        frame = pl.DataFrame({
            self.id_col: np.repeat(data.ids, horizon),
            self.time_col: data.future_times(horizon),
            PRED_COL: values.reshape(-1),
        })
        return from_polars(frame, data.kind)


def _carried_forward(y: np.ndarray, observed: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """``y`` (N,) with each unobserved value replaced by the last observed one of its
    series (leading ones by the first observed)."""
    if observed.all():
        return y
    out = y.copy()
    for a, b in pairwise(indptr):
        seen = observed[a:b]
        if not seen.any():
            raise ValueError("A series has no observed value: a baseline cannot forecast it.")
        last = np.maximum.accumulate(np.where(seen, np.arange(b - a), -1))
        last = np.where(last < 0, np.argmax(seen), last)
        out[a:b] = y[a:b][last]
    return out


class Naive(_Baseline):
    """Repeat the last observed value."""

    def _forecast(self, series, horizon):
        return np.stack([np.full(horizon, s[-1]) for s in series])


class SeasonalNaive(_Baseline):
    """Repeat the last full season: ``y[T + h] = y[T + h - m * ceil(h / m)]``."""

    def __init__(self, season_length: int, *, id_col: str = "unique_id", time_col: str = "ds",
                 target_col: str = "y", fill_missing: str | None = None):
        super().__init__(id_col=id_col, time_col=time_col, target_col=target_col,
                         fill_missing=fill_missing)
        self.season_length = season_length

    def _check_lengths(self, lengths):
        m = check_positive_int("season_length", self.season_length)
        short = self.data_.ids[lengths < m]
        if len(short):
            raise ValueError(f"Series {list(short[:5])} are shorter than season_length={m}.")

    def _forecast(self, series, horizon):
        m = self.season_length
        return np.stack([np.resize(s[-m:], horizon) for s in series])


class Drift(_Baseline):
    """Extend the line through the first and last values."""

    def _forecast(self, series, horizon):
        steps = np.arange(1, horizon + 1)
        out = []
        for s in series:
            slope = (s[-1] - s[0]) / (len(s) - 1) if len(s) > 1 else 0.0
            out.append(s[-1] + slope * steps)
        return np.stack(out)
