"""Training windows over a panel, sliced on demand.

A window is a (series, cutoff) pair: the lookback is the ``lookback`` steps
before the cutoff, the horizon the ``horizon`` steps from it. The dataset holds
only the pair index (two int arrays) and gathers a whole batch of windows with
one indexing operation per field, so memory follows the data, not the number of
windows.

Regions say where the horizons of a split may lie, per series, in local steps:
``(lo, hi)`` means every horizon step t has ``lo <= t < hi``; the lookback may
reach back before ``lo`` (it is history). Negative values count from the end of
each series, as in Python slicing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, RandomSampler

from .._checks import check_positive_int
from .panel import SeriesData

# Standard long-horizon ETT protocol borders in hourly rows (times 4 for 15-minute data).
ETT_BORDERS = {"train": (0, 8640), "val": (8640, 11520), "test": (11520, 14400)}


def time_split_regions(data: SeriesData, val_size: int, test_size: int = 0) -> dict:
    """Per-series horizon regions: the last ``test_size`` steps of each series for test,
    the ``val_size`` before them for validation, the rest for training."""
    for name, value in (("val_size", val_size), ("test_size", test_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative int. Got {value!r}.")
    n = data.lengths
    # clipped at 0: a series shorter than val_size + test_size simply has no training part
    val_start = np.maximum(n - val_size - test_size, 0)
    test_start = np.maximum(n - test_size, 0)
    return {"train": (np.zeros_like(n), val_start), "val": (val_start, test_start),
            "test": (test_start, n)}


def ett_regions(steps_per_hour: int = 1) -> dict:
    """The ETT borders as horizon regions (``steps_per_hour=4`` for ETTm)."""
    return {k: (lo * steps_per_hour, hi * steps_per_hour) for k, (lo, hi) in ETT_BORDERS.items()}


class WindowDataset(Dataset):
    """Windows of a :class:`SeriesData` for a network.

    Args:
        data: the validated panel (target and covariates already scaled if wanted).
        lookback: history length L fed to the network.
        horizon: forecast length H.
        stride: steps between consecutive cutoffs of a series.
        region: ``(lo, hi)`` horizon region (ints or per-series arrays); whole series if None.
        min_history: fewest real history steps a window needs; below ``lookback`` the
            lookback is left-padded and masked. Defaults to ``lookback``.

    A batch (from ``dataset[[i, j, ...]]`` or a DataLoader with
    ``collate_fn=WindowDataset.collate``) is a dict:
    ``history`` (B, L), ``history_mask`` (B, L) bool, ``target`` (B, H), ``target_mask``
    (B, H) bool, ``past`` (B, L, P), ``future`` (B, L + H, F), ``static`` (B, K),
    ``series`` (B,) series index, ``cutoff`` (B,) local index of the first horizon step.
    """

    def __init__(self, data: SeriesData, lookback: int, horizon: int, *, stride: int = 1,
                 region: tuple | None = None, min_history: int | None = None):
        for name, value in (("lookback", lookback), ("horizon", horizon), ("stride", stride)):
            check_positive_int(name, value)
        min_history = lookback if min_history is None else min_history
        if not 1 <= min_history <= lookback:
            raise ValueError(f"min_history must be in [1, lookback={lookback}]. Got {min_history}.")
        self.data, self.lookback, self.horizon = data, lookback, horizon
        n = data.lengths
        lo, hi = (0, n) if region is None else region
        lo = np.where(np.asarray(lo) < 0, n + np.asarray(lo), lo) * np.ones_like(n)
        hi = np.minimum(np.where(np.asarray(hi) < 0, n + np.asarray(hi), hi), n)
        first = np.maximum(lo, min_history)
        last = hi - horizon  # last admissible cutoff
        counts = np.where(last >= first, (last - first) // stride + 1, 0)
        self.series = np.repeat(np.arange(len(n)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        self.cutoffs = np.repeat(first, counts) + offsets * stride

    def __len__(self) -> int:
        return len(self.series)

    def __getitem__(self, index):
        if isinstance(index, (list, tuple, np.ndarray, torch.Tensor)):
            return self.__getitems__(index)
        return {k: v[0] for k, v in self.__getitems__([index]).items()}

    def __getitems__(self, indices) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        series, cutoff = self.series[idx], self.cutoffs[idx]
        L, H, data = self.lookback, self.horizon, self.data
        start = data.indptr[series] + cutoff  # global row of the first horizon step
        rel = np.arange(-L, H)  # (L + H,)
        rows = start[:, None] + rel  # (B, L + H)
        real = (cutoff[:, None] + rel) >= 0  # False on left padding
        rows_t = torch.from_numpy(np.where(real, rows, 0))
        real_t = torch.from_numpy(real)
        target = data.target[rows_t] * real_t
        mask = data.observed[rows_t] & real_t
        return {
            "history": target[:, :L], "history_mask": mask[:, :L],
            "target": target[:, L:], "target_mask": mask[:, L:],
            "past": data.past[rows_t[:, :L]] * real_t[:, :L, None],
            "future": data.future[rows_t] * real_t[..., None],
            "static": data.static[torch.from_numpy(series)],
            "series": torch.from_numpy(series), "cutoff": torch.from_numpy(cutoff),
        }

    @staticmethod
    def collate(batch):
        """``collate_fn`` for a DataLoader: batches arrive already stacked."""
        return batch

    def sampler(self, num_samples: int, seed: int | None = None) -> RandomSampler:
        """Draw ``num_samples`` random windows (with replacement) per epoch."""
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        return RandomSampler(self, replacement=True, num_samples=num_samples,
                             generator=generator)


def last_windows(data: SeriesData, lookback: int, future_ahead: torch.Tensor) -> dict:
    """One window per series ending at its last observation, for forecasting ahead.

    ``future_ahead`` (n, H, F) holds the future-known covariates over the horizon.
    Series shorter than ``lookback`` are left-padded and masked. Returns a batch like
    :class:`WindowDataset` without ``target``.
    """
    lengths = data.lengths
    rel = np.arange(-lookback, 0)
    local = lengths[:, None] + rel  # (n, L) local index, negative = padding
    real = local >= 0
    rows = torch.from_numpy(np.where(real, data.indptr[:-1, None] + local, 0))
    real_t = torch.from_numpy(real)
    history_future = data.future[rows] * real_t[..., None]
    return {
        "history": data.target[rows] * real_t,
        "history_mask": data.observed[rows] & real_t,
        "past": data.past[rows] * real_t[..., None],
        "future": torch.cat([history_future, future_ahead.to(history_future.dtype)], dim=1),
        "static": data.static,
        "series": torch.arange(data.n_series),
    }
