"""WindowDataModule: training and validation windows of one panel as dataloaders."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from .. import presets
from ..data import SeriesData, WindowDataset

MIN_BATCHES = 8  # per epoch, however few windows there are
# Validation windows scored after every epoch (for early stopping and the best weights),
# evenly spread over all of them. Neighbouring windows overlap in all but one step, so
# a spread subset scores like the whole set: scoring all ~78k of ETTm1's took longer
# than the epoch's training. The blend with the linear start is weighed on them too.
MONITOR_WINDOWS = 8192
class EpochSampler(Sampler[int]):
    """``num_samples`` window indices per process, drawn with replacement, a pure function
    of (seed, epoch): a resumed fit draws exactly what the uninterrupted one would.
    Lightning calls ``set_epoch`` at the start of every epoch.

    Under data parallelism all ``world_size`` processes draw the same
    ``num_samples * world_size`` indices and process ``rank`` keeps every
    ``world_size``-th from position ``rank``: the processes split one epoch's draw
    with nothing repeated or left out, and their i-th batches together are the i-th
    batch of a single process with ``world_size`` times the batch size."""

    def __init__(self, n_items: int, num_samples: int, seed: int, *, rank: int = 0,
                 world_size: int = 1):
        self.n_items, self.num_samples, self.seed, self.epoch = n_items, num_samples, seed, 0
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        """Reseed for ``epoch``: resumed fits draw the same windows."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        drawn = torch.randint(self.n_items, (self.num_samples * self.world_size,),
                              generator=generator)
        return iter(drawn[self.rank::self.world_size].tolist())


def spread(n_items: int, max_items: int | None) -> torch.Tensor:
    """(min(n_items, max_items),) int64 indices: all of ``range(n_items)``, or
    ``max_items`` of them evenly spread (``floor(j * n_items / max_items)``)."""
    kept = n_items if max_items is None else min(n_items, max_items)
    return torch.arange(kept, dtype=torch.int64) * n_items // max(kept, 1)


class ShardSampler(Sampler[int]):
    """Process ``rank``'s contiguous share of the items scored, ``spread(n_items,
    max_items)`` (the same ones every epoch, so the epochs' scores compare). The shares
    of all ``world_size`` processes cover every scored item exactly once (validation
    windows)."""

    def __init__(self, n_items: int, *, rank: int = 0, world_size: int = 1,
                 max_items: int | None = None):
        self.items = spread(n_items, max_items)
        self.start = rank * len(self.items) // world_size
        self.stop = (rank + 1) * len(self.items) // world_size

    def __len__(self) -> int:
        return self.stop - self.start

    def __iter__(self):
        return iter(self.items[self.start:self.stop].tolist())


class WindowDataModule(L.LightningDataModule):
    """Windows of ``data``: training horizons in ``train_region``, validation horizons in
    ``val_region`` (None: no validation). ``batches_per_epoch`` batches of random
    training windows per epoch (None:
    :func:`xlstm_ts.presets.default_batches_per_epoch`), at most one pass's worth (but
    at least ``MIN_BATCHES`` batches); after each epoch the validation windows of
    :attr:`monitored` are scored."""

    def __init__(self, data: SeriesData, lookback: int, horizon: int, *, train_region,
                 val_region=None, batch_size: int = 64, batches_per_epoch: int | None = None,
                 min_history: int | None = None, seed: int = 0):
        super().__init__()
        self.train = WindowDataset(data, lookback, horizon, region=train_region,
                                   min_history=min_history)
        self.val = (WindowDataset(data, lookback, horizon, region=val_region,
                                  min_history=min_history) if val_region is not None else None)
        if len(self.train) == 0:
            raise ValueError(
                f"No training windows: every series is shorter than lookback ({lookback}) + "
                f"horizon ({horizon}) before its validation part. Lower lookback or val_size."
            )
        self.batch_size = batch_size
        self.batches_per_epoch = (presets.default_batches_per_epoch(len(self.train))
                                  if batches_per_epoch is None else batches_per_epoch)
        # an epoch is one pass's worth of draws, capped at batches_per_epoch batches, but
        # at least MIN_BATCHES batches: tiny panels (one 144-point series has ~70 windows)
        # would otherwise train a handful of steps in all
        one_pass = max(len(self.train), MIN_BATCHES * batch_size)
        self.samples = min(self.batches_per_epoch * batch_size, one_pass)
        self.seed = seed

    @property
    def monitored(self) -> np.ndarray:
        """Indices into ``val`` of the windows scored after each epoch: all of them, or
        ``MONITOR_WINDOWS`` evenly spread."""
        return spread(len(self.val), MONITOR_WINDOWS).numpy() if self.val is not None \
            else np.zeros(0, dtype=np.int64)

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps in one epoch of one process."""
        return -(-self.samples // self.batch_size)

    def _placement(self) -> dict:
        """This process's rank and the number of processes (1 outside a trainer)."""
        trainer = self.trainer
        if trainer is None:
            return {"rank": 0, "world_size": 1}
        return {"rank": trainer.global_rank, "world_size": trainer.world_size}

    # The trainer is built with use_distributed_sampler=False: the samplers shard by
    # themselves, so a data-parallel run splits exactly the single-process draw.
    def train_dataloader(self) -> DataLoader:
        sampler = EpochSampler(len(self.train), self.samples, self.seed, **self._placement())
        return DataLoader(self.train, batch_size=self.batch_size, sampler=sampler,
                          collate_fn=WindowDataset.collate)

    def val_dataloader(self):
        if self.val is None or len(self.val) == 0:
            return []
        return DataLoader(self.val, batch_size=max(self.batch_size, 256),
                          sampler=ShardSampler(len(self.val), max_items=MONITOR_WINDOWS,
                                               **self._placement()),
                          collate_fn=WindowDataset.collate)
