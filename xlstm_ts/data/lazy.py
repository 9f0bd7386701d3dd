"""Panels larger than memory: a polars ``LazyFrame`` or parquet files read a batch of
series at a time, staged as parquet shards of whole series, and windows sampled
from one shard at a time.

:func:`stage_panel` validates each batch as :func:`~.series.prepare_series` does
(gaps, missing targets, one frequency) and writes it as a shard of rows ``(id,
values)``: each series' targets on its time grid, NaN where unobserved. It keeps each
series' last ``keep`` rows in memory (the window a forecast reads). Memory holds one
batch of series, whatever the panel size. :class:`PanelWindows` then draws training
windows shard by shard (each process of a distributed run its own shards).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import polars as pl
import torch

from .panel import SeriesData
from .series import prepare_series

BATCH_SERIES = 2000  # series validated and written per shard


def is_lazy_source(df) -> bool:
    """Whether ``df`` is read lazily: a polars ``LazyFrame``, a ``.parquet`` file or a
    folder of them."""
    if isinstance(df, pl.LazyFrame):
        return True
    if isinstance(df, (str, os.PathLike)):
        path = Path(df)
        return path.suffix == ".parquet" or path.is_dir()
    return False


def scan_source(df) -> pl.LazyFrame:
    """The lazy frame of a :func:`is_lazy_source` source; a missing path is a
    ValueError naming it."""
    if isinstance(df, pl.LazyFrame):
        return df
    path = Path(df)
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
        if not files:
            raise ValueError(f"{path} holds no .parquet files.")
        return pl.scan_parquet(files)
    if not path.exists():
        raise ValueError(f"{path} does not exist.")
    return pl.scan_parquet(path)


@dataclass(frozen=True)
class StagedPanel:
    """A panel staged by :func:`stage_panel`: ``folder`` holds the shards, ``tail``
    each series' last ``keep`` steps (validated), ``lengths`` every series' steps."""

    folder: Path
    shards: tuple[str, ...]
    tail: SeriesData
    lengths: np.ndarray


def stage_panel(source, folder: str | os.PathLike, *, id_col: str, time_col: str,
                target_col: str, keep: int, fill_missing=None, target_missing="raise",
                batch_series: int | None = None) -> StagedPanel:
    """Validate ``source`` (see :func:`is_lazy_source`) a batch of ``batch_series``
    (default ``BATCH_SERIES``) series at a time and write each batch as a shard in
    ``folder``. Only the target is staged: covariates need the panel in memory."""
    batch_series = batch_series or BATCH_SERIES
    lazy = scan_source(source)
    names = lazy.collect_schema().names()
    for role, column in (("id_col", id_col), ("time_col", time_col),
                         ("target_col", target_col)):
        if column not in names:
            raise ValueError(f"{role}={column!r} is not a column of the data; columns: "
                             f"{names}.")
    ids = lazy.select(pl.col(id_col).unique()).collect()[id_col].sort().to_list()
    if not ids:
        raise ValueError("The data holds no rows.")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards, tails, lengths, freq = [], [], [], None
    for start in range(0, len(ids), batch_series):
        batch = ids[start:start + batch_series]
        part = lazy.filter(pl.col(id_col).is_in(batch)).select(id_col, time_col, target_col)
        data = prepare_series(part.collect(), id_col=id_col, time_col=time_col,
                              target_col=target_col, fill_missing=fill_missing,
                              target_missing=target_missing, freq=freq)
        freq = data.freq if freq is None else freq
        if tails and data.freq != freq:
            raise ValueError(f"The series of the data do not share one frequency ({freq} "
                             f"and {data.freq}).")
        values = data.target.masked_fill(~data.observed, float("nan")).numpy()
        bounds = zip(data.indptr[:-1], data.indptr[1:], strict=True)
        series = [values[a:b] for a, b in bounds]
        name = f"shard-{len(shards):05d}.parquet"
        _write_atomically(pl.DataFrame(
            {"id": [str(i) for i in data.ids.tolist()], "values": [s.tolist() for s in series]},
            schema={"id": pl.String, "values": pl.List(pl.Float32)}), folder / name)
        shards.append(name)
        lengths.append(data.lengths)
        tails.append(_tail(data, keep))
    return StagedPanel(folder, tuple(shards), _concat(tails), np.concatenate(lengths))


def _tail(data: SeriesData, keep: int) -> SeriesData:
    """Each series' last ``keep`` rows."""
    lengths = np.minimum(data.lengths, keep)
    starts = np.repeat(data.indptr[1:] - lengths, lengths)
    offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    rows = torch.from_numpy(starts + offsets)
    return replace(data, indptr=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
                   times=data.times[rows.numpy()], target=data.target[rows],
                   observed=data.observed[rows], past=data.past[rows],
                   future=data.future[rows])


def _concat(parts: list[SeriesData]) -> SeriesData:
    """Panels of disjoint series, in order, as one (the first's frequency and columns)."""
    offsets = np.cumsum([0] + [p.indptr[-1] for p in parts[:-1]])
    return replace(parts[0], ids=np.concatenate([p.ids for p in parts]),
                   indptr=np.concatenate([[0]] + [p.indptr[1:] + o for p, o in
                                                  zip(parts, offsets, strict=True)]),
                   times=np.concatenate([p.times for p in parts]),
                   target=torch.cat([p.target for p in parts]),
                   observed=torch.cat([p.observed for p in parts]),
                   past=torch.cat([p.past for p in parts]),
                   future=torch.cat([p.future for p in parts]),
                   static=torch.cat([p.static for p in parts]))


def _write_atomically(frame: pl.DataFrame, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def process_rank() -> tuple[int, int]:
    """(rank, world size) of this process in a distributed run (0, 1 outside one): the
    shards each process of a data-parallel run reads depend on it."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def _window(values: np.ndarray, end: int, lookback: int, horizon: int) -> dict:
    """The window whose history ends before step ``end`` of ``values``: ``lookback``
    steps (NaN-padded on the left) and the ``horizon`` after (NaN-padded on the right),
    in the layout of :class:`~.windows.WindowDataset` without covariates."""
    history = np.full(lookback, np.nan, np.float32)
    target = np.full(horizon, np.nan, np.float32)
    seen = values[max(0, end - lookback):end]
    history[lookback - len(seen):] = seen
    ahead = values[end:end + horizon]
    target[:len(ahead)] = ahead
    history, target = torch.from_numpy(history), torch.from_numpy(target)
    return {"history": torch.nan_to_num(history), "history_mask": ~history.isnan(),
            "target": torch.nan_to_num(target), "target_mask": ~target.isnan(),
            "past": torch.zeros(lookback, 0), "future": torch.zeros(lookback + horizon, 0)}


def _shard_series(folder: Path, shard: str) -> list[np.ndarray]:
    return [np.asarray(v, np.float32) for v in
            pl.read_parquet(folder / shard, columns=["values"])["values"]]


class PanelWindows(torch.utils.data.IterableDataset):
    """``windows`` random training windows per pass (per epoch) of a staged panel:
    a history of ``lookback`` steps with at least ``min_history`` observed, then
    ``horizon`` steps, all before each series' last ``val`` steps. Shards are read one
    at a time, ``per_shard`` windows each; each process of a distributed run draws
    from its own shards. The pass number reseeds the draw."""

    def __init__(self, staged: StagedPanel, lookback: int, horizon: int, val: int,
                 windows: int, min_history: int, seed: int = 0, per_shard: int = 4096):
        self.staged, self.lookback, self.horizon, self.val = staged, lookback, horizon, val
        self.windows, self.min_history, self.seed = windows, min_history, seed
        self.per_shard, self.passes = per_shard, 0

    def __iter__(self):
        rank, world = process_rank()
        every = self.staged.shards
        shards = every[rank::world] or [every[rank % len(every)]]
        rng = np.random.default_rng([self.seed, rank, self.passes])
        self.passes += 1
        produced = 0
        while produced < self.windows // world:
            series = _shard_series(self.staged.folder, shards[int(rng.integers(len(shards)))])
            usable = [s for s in series
                      if len(s) - self.val - self.horizon >= self.min_history]
            if not usable:
                continue
            for _ in range(min(self.per_shard, self.windows // world - produced)):
                s = usable[int(rng.integers(len(usable)))]
                end = int(rng.integers(self.min_history, len(s) - self.val - self.horizon + 1))
                produced += 1
                yield _window(s, end, self.lookback, self.horizon)


def validation_windows(staged: StagedPanel, lookback: int, horizon: int, val: int,
                       count: int) -> list[dict]:
    """The window starting each series' last ``val`` steps (its first ``horizon`` of
    them; NaN past the series' end), for at most ``count`` series spread evenly
    across the panel."""
    if val <= 0:
        return []
    total = len(staged.lengths)
    chosen = set(np.unique(np.linspace(0, total - 1, min(total, count)).astype(np.int64)))
    out, first = [], 0
    for shard in staged.shards:
        series = _shard_series(staged.folder, shard)
        for k, s in enumerate(series):
            if first + k in chosen and len(s) > val:
                out.append(_window(s, len(s) - val, lookback, horizon))
        first += len(series)
    return out
