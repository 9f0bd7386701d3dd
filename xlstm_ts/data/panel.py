"""The validated panel: :class:`SeriesData` holds all series back to back (CSR
layout, ``indptr`` marking where each starts) with their covariates, and
:class:`Columns` the role of each column."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import polars as pl
import torch

from .covariates import (
    is_calendar_column,
)
from .frames import FrameKind
from .freq import Frequency

FillMissing = Literal["nan", "ffill", "zero"]
TargetMissing = Literal["raise", "mask", "ffill", "zero"]
SINGLE_SERIES_ID = "series_0"
_MAX_LISTED = 5


@dataclass(frozen=True)
class Columns:
    """Column roles of a panel."""

    id_col: str = "unique_id"
    time_col: str = "ds"
    target_col: str = "y"
    future: tuple[str, ...] = ()  # known over the horizon (incl. generated calendar columns)
    past: tuple[str, ...] = ()  # observed up to the cutoff only
    static: tuple[str, ...] = ()  # encoded static columns (one-hot expanded)

    @property
    def given_future(self) -> tuple[str, ...]:
        """The future covariates the caller supplies over the horizon (not calendar)."""
        return tuple(c for c in self.future if not is_calendar_column(c))


@dataclass
class SeriesData:
    """A validated panel. N = total rows, n = number of series.

    Attributes:
        ids: (n,) series ids in sorted order.
        indptr: (n + 1,) int64; series j occupies rows ``indptr[j]:indptr[j+1]``.
        times: (N,) ``datetime64[us]`` or int64, increasing within each series.
        target: (N,) float32; missing values masked are stored as 0.
        observed: (N,) bool; False where the target was missing and masked.
        past: (N, P) float32 past-only covariates.
        future: (N, F) float32 future-known covariates.
        static: (n, K) float32 static features.
        freq: the sampling frequency (None for a panel of single points).
        columns: column roles; ``kind``: the caller's frame library.
        static_categories: one-hot categories learned from the static frame.
    """

    ids: np.ndarray
    indptr: np.ndarray
    times: np.ndarray
    target: torch.Tensor
    observed: torch.Tensor
    past: torch.Tensor
    future: torch.Tensor
    static: torch.Tensor
    freq: Frequency | None
    columns: Columns
    kind: FrameKind
    static_categories: dict[str, list[str]] = field(default_factory=dict)
    calendar: tuple[str, ...] = ()
    time_zone: str | None = None  # the caller's zone; ``times`` hold naive UTC
    dates: bool = False  # the caller's times were polars ``Date``s; ``times`` hold midnights

    @property
    def n_series(self) -> int:
        return len(self.ids)

    def last_times(self) -> np.ndarray:
        """(n,) the last time of each series."""
        return self.times[self.indptr[1:] - 1]

    def future_times(self, horizon: int) -> pl.Series:
        """(n * horizon,) the ``horizon`` times after each series' end, series by series,
        in the caller's time zone (as dates if the caller gave dates); nulls when the
        frequency is unknown."""
        if self.freq is None:
            return pl.Series([None] * (self.n_series * horizon))
        after = self.freq.after(self.last_times(), horizon)
        # polars converts datetime64 arrays slowly: their int64 view plus a cast is faster
        times = (pl.Series(after.view(np.int64)).cast(pl.Datetime("us"))
                 if after.dtype == np.dtype("datetime64[us]") else pl.Series(after))
        if self.time_zone is not None:
            times = times.dt.replace_time_zone("UTC").dt.convert_time_zone(self.time_zone)
        if self.dates:  # steps between dates are whole days: midnights stay midnights
            times = times.cast(pl.Date)
        return times

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def head(self, steps: np.ndarray) -> SeriesData:
        """The panel of each series' first ``steps`` (n,) rows (at most its length)."""
        steps = np.minimum(np.asarray(steps, dtype=np.int64), self.lengths)
        rows = np.concatenate([np.arange(a, a + m) for a, m in
                               zip(self.indptr[:-1], steps, strict=True)]).astype(np.int64)
        return _take_rows(self, rows, steps)

    def subset(self, keep: np.ndarray) -> SeriesData:
        """The panel restricted to the series where ``keep`` (n,) is True."""
        lengths = self.lengths
        rows = np.repeat(keep, lengths)
        indptr = np.concatenate([[0], np.cumsum(lengths[keep])]).astype(np.int64)
        rows_t = torch.from_numpy(rows)
        return replace(self, ids=self.ids[keep], indptr=indptr, times=self.times[rows],
                       target=self.target[rows_t], observed=self.observed[rows_t],
                       past=self.past[rows_t], future=self.future[rows_t],
                       static=self.static[torch.from_numpy(keep)])


def _listed(values) -> str:
    values = list(values)
    more = f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else ""
    shown = (v.item() if isinstance(v, np.generic) else v for v in values[:_MAX_LISTED])
    return ", ".join(repr(v) for v in shown) + more


def _take_rows(data: SeriesData, rows: np.ndarray, lengths: np.ndarray) -> SeriesData:
    """The panel made of ``rows`` (in order), cut into series of ``lengths`` (n,)."""
    rows_t = torch.from_numpy(rows)
    return replace(data, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   times=data.times[rows], target=data.target[rows_t],
                   observed=data.observed[rows_t], past=data.past[rows_t],
                   future=data.future[rows_t])
