"""Sampling frequency of a panel: inferred once, then used to step time forward.

Four kinds cover practice: a fixed duration (hours, minutes, days, weeks),
calendar months (monthly, quarterly, yearly data, whose durations vary), business
days (Monday to Friday: markets, offices) and a plain integer index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import polars as pl

_US = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}


Kind = Literal["fixed", "months", "business_days", "index"]
KINDS: tuple[str, ...] = get_args(Kind)  # Frequency.kind, also as saved


@dataclass(frozen=True)
class Frequency:
    """Step between observations.

    ``kind="fixed"``: ``step`` microseconds; ``"months"``: calendar months;
    ``"business_days"``: weekdays, Monday to Friday (no holiday calendar);
    ``"index"``: integer time index.
    """

    kind: Kind
    step: int

    def __str__(self) -> str:
        if self.kind == "index":
            return f"{self.step}i"
        if self.kind == "business_days":
            return f"{self.step}bd"
        if self.kind == "months":
            return f"{self.step // 12}y" if self.step % 12 == 0 else f"{self.step}mo"
        for unit, size in _US.items():
            if self.step % size == 0:
                return f"{self.step // size}{unit}"
        return f"{self.step}us"

    @property
    def whole_days(self) -> bool:
        """Steps of whole calendar days: daily, business-day, weekly, monthly, yearly."""
        return self.kind in ("months", "business_days") or (
            self.kind == "fixed" and self.step % _US["d"] == 0)

    def future(self, last: pl.Series, horizon: int) -> pl.Series:
        """Times ``1..horizon`` steps after each value of ``last``; flat, series-major."""
        physical = last.to_physical()  # numpy on the physical values: cheaper than queries
        repeated = np.repeat(physical.to_numpy(), horizon)
        steps = np.tile(np.arange(1, horizon + 1), len(last))
        per_step = self._physical_step(last.dtype)
        if per_step is not None:
            return pl.Series(last.name, repeated + steps * per_step,
                             dtype=physical.dtype).cast(last.dtype)
        base = pl.Series(last.name, repeated, dtype=physical.dtype).cast(last.dtype)
        return self._add_steps(base, steps, month_end=self._all_month_ends(last))

    def after(self, last: np.ndarray, horizon: int) -> np.ndarray:
        """Times ``1..horizon`` steps after each of ``last`` (n,), as a panel stores them
        (``datetime64[us]`` or int64); flat, series-major. Fixed steps and integer
        indexes stay in numpy (a streamed update calls this for one series, where
        building polars objects cost more than the arithmetic); calendar months go
        and business days go through :meth:`future`."""
        native = last.dtype == np.int64 or last.dtype == np.dtype("datetime64[us]")
        if self.kind in ("months", "business_days") or not native:
            return self.future(pl.Series(last), horizon).to_numpy()
        step = np.arange(1, horizon + 1) * self.step
        if last.dtype != np.int64:
            step = step.astype("timedelta64[us]")
        return (last[:, None] + step).reshape(-1)

    def _physical_step(self, dtype: pl.DataType) -> int | None:
        """One step in the physical units of ``dtype``: for the panel's own time types
        (integers, Datetime in microseconds); None where calendar arithmetic is needed."""
        if self.kind == "index" and dtype == pl.Int64:
            return self.step
        if self.kind == "fixed" and dtype == pl.Datetime("us"):
            return self.step
        return None

    def shift(self, times: pl.Series, steps: int) -> pl.Series:
        """Each of ``times`` moved ``steps`` (negative: back) grid steps."""
        return self._add_steps(times, np.full(len(times), steps),
                               month_end=self._all_month_ends(times))

    def _all_month_ends(self, times: pl.Series) -> bool:
        return self.kind == "months" and bool(times.dt.month_end().eq(times).all())

    def _add_steps(self, base: pl.Series, steps: np.ndarray, month_end: bool) -> pl.Series:
        if self.kind == "index":
            return base + pl.Series(steps * self.step)
        if self.kind == "fixed":
            return base + pl.Series(steps * self.step).cast(pl.Duration("us"))
        frame = pl.DataFrame({"t": base, "k": steps * self.step})
        if self.kind == "business_days":  # the time of day is kept
            return frame.select(pl.col("t").dt.add_business_days(pl.col("k")))["t"]
        shifted = frame.select(
            pl.col("t").dt.offset_by(pl.format("{}mo", pl.col("k")))
        )["t"]
        return shifted.dt.month_end() if month_end else shifted


def infer_frequency(times: np.ndarray, starts: np.ndarray) -> Frequency | None:
    """Most common step between consecutive times within series; ``None`` if no series
    has two points. ``times`` sorted within series; ``starts`` marks each series' first row."""
    if np.issubdtype(times.dtype, np.integer):
        diffs = np.diff(times.astype(np.int64))[~starts[1:]]
        return Frequency("index", int(_mode(diffs))) if diffs.size else None
    micros = times.astype("datetime64[us]").astype(np.int64)
    diffs = np.diff(micros)[~starts[1:]]
    if diffs.size == 0:
        return None
    step = int(_mode(diffs))
    day = _US["d"]
    monthly = (28, 31), (89, 92), (181, 184), (365, 366)  # month, quarter, half, year in days
    if any(lo * day <= step <= hi * day for lo, hi in monthly):
        months = np.diff(times.astype("datetime64[M]").astype(np.int64))[~starts[1:]]
        return Frequency("months", int(_mode(months)))
    if step == day and _business_days(times, diffs, times[1:][~starts[1:]]):
        return Frequency("business_days", 1)
    return Frequency("fixed", step)


def _business_days(times: np.ndarray, diffs: np.ndarray, later: np.ndarray) -> bool:
    """Daily steps (``diffs`` in microseconds, ``later`` the second time of each),
    every time on a weekday and steps from Friday to Monday: business-day data
    (pandas' ``"B"``), whose weekends are not gaps."""
    mondays = np.is_busday(later.astype("datetime64[D]"), weekmask="1000000")
    friday_to_monday = (diffs == 3 * _US["d"]) & mondays
    return bool(friday_to_monday.any() and np.is_busday(times.astype("datetime64[D]")).all())


def _mode(values: np.ndarray) -> int:
    if (values == values[0]).all():  # the usual case, O(n) instead of a sort
        return values[0]
    uniques, counts = np.unique(values, return_counts=True)
    return uniques[np.argmax(counts)]
