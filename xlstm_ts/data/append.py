"""New observations of fitted series: checking that they continue each series,
bridging a gap by the model's gap rule, and appending them to the kept window
(``XLSTMForecaster.update``)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import torch

from .frames import FrameKind, FrameLike, to_polars
from .panel import SeriesData, _listed, _take_rows
from .series import check_compatible
from .times import as_long_frame


def continue_series(fitted: SeriesData, new: SeriesData, *,
                    skip_seen: bool = False) -> tuple[SeriesData, np.ndarray, int]:
    """Check that ``new`` observations continue series of ``fitted`` without a gap.

    Each series of ``new`` must be a fitted series and start one step after that
    series' last time. Rows at or before it are an error, or with ``skip_seen``
    (re-running a scheduled job) left out and counted. Returns the new panel
    without skipped rows, the fitted index of each of its series, and the number of
    skipped rows.
    """
    check_compatible(fitted, new)
    if np.array_equal(new.ids, fitted.ids):  # a step of every series: no id lookups
        codes = np.arange(fitted.n_series, dtype=np.int64)
    else:
        position = {key: j for j, key in enumerate(fitted.ids.tolist())}
        codes = np.array([position[key] for key in new.ids.tolist()], dtype=np.int64)
    last = fitted.times[fitted.indptr[codes + 1] - 1]  # (n_new,)
    seen = new.times <= np.repeat(last, new.lengths)
    skipped = int(seen.sum())
    if skipped and not skip_seen:
        at = np.flatnonzero(seen)[0]
        series = np.searchsorted(new.indptr, at, side="right") - 1
        raise ValueError(
            f"{skipped} rows are at or before the last time already absorbed, e.g. series "
            f"{_listed(new.ids[series:series + 1])} at {new.times[at]} (absorbed up to "
            f"{last[series]}). Pass only new observations, or skip_seen=True to leave such "
            f"rows out.")
    if skipped:
        lengths = np.bincount(np.repeat(np.arange(new.n_series), new.lengths)[~seen],
                              minlength=new.n_series)
        new = _take_rows(new, np.flatnonzero(~seen), lengths)
        keep = lengths > 0
        new, codes, last = new.subset(keep), codes[keep], last[keep]
    if new.n_series and fitted.freq is not None:
        expected = fitted.freq.after(last, 1)
        first = new.times[new.indptr[:-1]]
        gap = np.flatnonzero(first != expected.astype(first.dtype))
        if len(gap):
            j = gap[0]
            raise ValueError(
                f"{len(gap)} series do not continue where they ended, e.g. series "
                f"{_listed(new.ids[j:j + 1])}: expected {expected[j]} after {last[j]}, got "
                f"{first[j]}. Pass the missing steps, or set fill_missing on the model "
                f"(set_params or refit) to fill such gaps.")
    return new, codes, skipped


def starts_after_gap(fitted: SeriesData, new: SeriesData) -> bool:
    """Whether a series of ``new`` that ``fitted`` holds starts later than one step after
    its last absorbed time (what :func:`bridge_gaps` bridges); vectorised, for the
    update path."""
    if fitted.freq is None or not new.n_series:
        return False
    if np.array_equal(new.ids, fitted.ids):
        codes = np.arange(fitted.n_series)
    else:
        position = {key: j for j, key in enumerate(fitted.ids.tolist())}
        codes = np.array([position.get(key, -1) for key in new.ids.tolist()])
    known = codes >= 0
    expected = fitted.freq.after(fitted.last_times()[codes[known]], 1)
    first = new.times[new.indptr[:-1]][known]
    return bool((first > expected.astype(first.dtype)).any())


def bridge_gaps(fitted: SeriesData, df: FrameLike) -> tuple[pl.DataFrame, FrameKind, set]:
    """New rows ``df`` (the fitted columns) with, before each fitted series whose rows
    start later than one step after its last absorbed time, that last absorbed row (its
    target and covariates as absorbed): validated with the model's ``fill_missing``,
    the gap between them is then filled as a gap inside the data would be. Returns the
    frame, its library and the ids so bridged (drop their first row after validation:
    :func:`drop_bridges`)."""
    cols = fitted.columns
    frame, kind = to_polars(df)
    if fitted.freq is None or frame.is_empty() or cols.time_col not in frame.columns:
        return frame, kind, set()
    long = as_long_frame(frame, cols.id_col, cols.time_col)
    first = long.group_by(cols.id_col).agg(pl.col(cols.time_col).min())
    position = {key: j for j, key in enumerate(fitted.ids.tolist())}
    rows, times, bridged = [], [], set()
    for key, start in first.iter_rows():
        j = position.get(key)
        if j is None:
            continue  # not a fitted series: continue_series names it
        last_row = int(fitted.indptr[j + 1]) - 1
        last = fitted.times[last_row]
        expected = fitted.freq.after(np.array([last]), 1)[0]
        start = np.datetime64(start, "us") if fitted.times.dtype.kind == "M" else start
        if start <= expected:
            continue  # continues (or overlaps: continue_series decides)
        row = {cols.id_col: key, cols.target_col: float(fitted.target[last_row])}
        times.append(last)
        for j_col, name in enumerate(cols.past):
            row[name] = float(fitted.past[last_row, j_col])
        for j_col, name in enumerate(cols.future):
            if name in cols.given_future:
                row[name] = float(fitted.future[last_row, j_col])
        rows.append(row)
        bridged.add(key)
    if not rows:
        return frame, kind, set()
    anchors = pl.DataFrame(rows).with_columns(
        pl.Series(cols.time_col, np.array(times)).cast(long[cols.time_col].dtype))
    keep = [c for c in long.columns if c in anchors.columns or c == cols.time_col]
    return pl.concat([anchors, long.select(keep)], how="diagonal_relaxed"), kind, bridged


def drop_bridges(data: SeriesData, bridged: set) -> SeriesData:
    """``data`` without the first row of each series in ``bridged`` (the anchors
    :func:`bridge_gaps` added)."""
    if not bridged:
        return data
    drop = np.zeros(int(data.indptr[-1]), dtype=bool)
    lengths = data.lengths.copy()
    for j, key in enumerate(data.ids.tolist()):
        if key in bridged:
            drop[data.indptr[j]] = True
            lengths[j] -= 1
    return _take_rows(data, np.flatnonzero(~drop), lengths)


def append_observations(fitted: SeriesData, new: SeriesData, codes: np.ndarray,
                        keep: int) -> SeriesData:
    """``fitted`` with the rows of ``new`` (series j continuing fitted series
    ``codes[j]``) appended, keeping each series' last ``keep`` rows."""
    if _uniform_step(fitted, new, codes):
        return _append_uniform(fitted, new, keep)
    return _append_rows(fitted, new, codes, keep)


def every_series_in_order(codes: np.ndarray, n: int) -> bool:
    """``codes`` (series indices) name each of ``n`` series once, in order: 0..n-1."""
    return len(codes) == n and bool((codes == np.arange(n)).all())


def _uniform_step(fitted: SeriesData, new: SeriesData, codes: np.ndarray) -> bool:
    """Every fitted series, in order, of one length, gets the same number of new rows:
    a streamed step, whose panels are (n, length) grids."""
    n = fitted.n_series
    return (n > 0 and every_series_in_order(codes, n)
            and bool((fitted.indptr == fitted.indptr[1] * np.arange(n + 1)).all())
            and bool((new.indptr == new.indptr[1] * np.arange(n + 1)).all()))


def _append_uniform(fitted: SeriesData, new: SeriesData, keep: int) -> SeriesData:
    """:func:`append_observations` of a :func:`_uniform_step`: the (n, length) grids
    joined along time and cut to their last ``keep`` columns, without a row plan
    (cheaper per call for the one-series updates of a stream)."""
    n, old, added = fitted.n_series, int(fitted.indptr[1]), int(new.indptr[1])
    kept = min(old + added, keep)

    def join(before, after):  # (n * old, ...) and (n * added, ...) -> (n * kept, ...)
        cat = np.concatenate if isinstance(before, np.ndarray) else torch.cat
        rest = before.shape[1:]  # the kept tails only: one copy, already contiguous
        tail = before.reshape(n, old, *rest)[:, max(old + added - kept, 0):]
        grid = cat([tail, after.reshape(n, added, *rest)[:, added - min(added, kept):]], 1)
        return grid.reshape(n * kept, *rest)

    return replace(fitted, indptr=kept * np.arange(n + 1, dtype=np.int64),
                   times=join(fitted.times, new.times.astype(fitted.times.dtype)),
                   target=join(fitted.target, new.target),
                   observed=join(fitted.observed, new.observed),
                   past=join(fitted.past, new.past), future=join(fitted.future, new.future))


def _append_rows(fitted: SeriesData, new: SeriesData, codes: np.ndarray,
                 keep: int) -> SeriesData:
    """:func:`append_observations` in general: a plan of rows taken from both panels."""
    n_old = int(fitted.indptr[-1])
    added = np.zeros(fitted.n_series, dtype=np.int64)
    added[codes] = new.lengths
    new_start = np.zeros(fitted.n_series, dtype=np.int64)
    new_start[codes] = new.indptr[:-1]
    old_len = fitted.lengths
    kept = np.minimum(old_len + added, keep)
    # row plan per series: its old tail, then its last new rows (a run of each)
    take_new = np.minimum(added, kept)
    from_old = kept - take_new
    starts = np.stack([fitted.indptr[1:] - from_old,
                       n_old + new_start + added - take_new], axis=1).reshape(-1)
    counts = np.stack([from_old, take_new], axis=1).reshape(-1)
    rows = (np.arange(counts.sum(), dtype=np.int64)
            + np.repeat(starts - (np.cumsum(counts) - counts), counts)).astype(np.int64)
    both = replace(fitted, times=np.concatenate([fitted.times, new.times.astype(
        fitted.times.dtype)]), target=torch.cat([fitted.target, new.target]),
        observed=torch.cat([fitted.observed, new.observed]),
        past=torch.cat([fitted.past, new.past]), future=torch.cat([fitted.future, new.future]))
    return _take_rows(both, rows, kept)
