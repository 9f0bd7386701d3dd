"""The pretraining corpus: synthetic and real series written as parquet shards and
read lazily, one shard at a time.

A shard holds rows ``(source, values)``: a generator's name or a file's name and the
series as a list of float32. ``manifest.json`` lists the shards, the series per
source and the seed. The zero-shot yardsticks (M4 Hourly, M3 Yearly) are never read
(:data:`EXCLUDED`), and of the ETT files only the protocol's training rows, so their
validation and test rows stay unseen.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import torch

from ..data.lazy import process_rank
from .synthetic import GENERATORS, tsmixup

EXCLUDED = ("m4_hourly", "m3_yearly")  # zero-shot yardsticks: never in a corpus
ETT_TRAIN_ROWS = {"ETTh1.csv": 8640, "ETTh2.csv": 8640, "ETTm1.csv": 34560,
                  "ETTm2.csv": 34560}  # the long-horizon protocol's training rows
KERNEL_SYNTH_MAX = 512  # a GP draw costs O(length^3)


def real_series(folders: list[str | os.PathLike]) -> dict[str, list[np.ndarray]]:
    """Every numeric column of the CSV files in ``folders`` (a long file with a
    ``store``-like id column split by it), by file name; :data:`EXCLUDED` files
    skipped, ETT files cut to their training rows."""
    import pandas as pd

    out: dict[str, list[np.ndarray]] = {}
    for folder in folders:
        for path in sorted(Path(folder).glob("*.csv")):
            if path.name in out or any(path.name.startswith(x) for x in EXCLUDED):
                continue
            frame = pd.read_csv(path)
            frame = frame.iloc[:ETT_TRAIN_ROWS.get(path.name, len(frame))]
            numeric = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c])]
            text = [c for c in frame.columns if c not in numeric]
            ids = [c for c in text if frame[c].nunique() < len(frame) / 10]
            series = []
            for _, part in (frame.groupby(ids[0], sort=True) if ids else [(None, frame)]):
                for column in numeric:
                    values = part[column].to_numpy(np.float64)
                    if np.isfinite(values).sum() >= 32 and np.nanstd(values) > 0:
                        series.append(values)
            if series:
                out[path.name] = series
    return out


def write_corpus(folder: str | os.PathLike, *, synthetic_series: int, length: int,
                 real_folders: list[str | os.PathLike], seed: int = 0,
                 shard_series: int = 1000) -> dict:
    """Write the corpus into ``folder``: ``synthetic_series`` series from the generators
    in turn (TSMixup of the real series among them), of random lengths up to
    ``length``, and every real series; returns the manifest (also written)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    real = real_series(real_folders)
    pool = [s[np.isfinite(s)] for series in real.values() for s in series]
    makers = [*GENERATORS, "tsmixup"] if pool else list(GENERATORS)
    rows: list[tuple[str, np.ndarray]] = [(name, s) for name, series in real.items()
                                          for s in series]
    for k in range(synthetic_series):
        name = makers[k % len(makers)]
        n = int(rng.integers(length // 4, length + 1))
        if name == "kernel_synth":
            n = min(n, KERNEL_SYNTH_MAX)
        if name == "tsmixup":
            n = min(n, max(len(s) for s in pool))
            values = tsmixup(rng, n, pool)
        else:
            values = GENERATORS[name](rng, n)
        rows.append((name, values))
    order = rng.permutation(len(rows))
    shards = []
    for start in range(0, len(order), shard_series):
        part = [rows[j] for j in order[start:start + shard_series]]
        shard = folder / f"shard-{len(shards):05d}.parquet"
        pl.DataFrame({"source": [r[0] for r in part],
                      "values": [r[1].astype(np.float32).tolist() for r in part]},
                     schema={"source": pl.String, "values": pl.List(pl.Float32)}
                     ).write_parquet(shard)
        shards.append(shard.name)
    manifest = {"seed": seed, "synthetic_series": synthetic_series, "max_length": length,
                "shards": shards, "series": dict(Counter(r[0] for r in rows)),
                "excluded": list(EXCLUDED), "ett_rows": "training rows only"}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def sample_window(rng: np.random.Generator, values: np.ndarray, context_len: int,
                  future_len: int, min_context: int) -> tuple[np.ndarray, np.ndarray]:
    """A random (history (context_len,), target (future_len,)) window of ``values``:
    a horizon of 1..future_len steps and a history of min_context..context_len steps
    (what the series holds), NaN-padded on the left of the history and the right of
    the target."""
    h = int(rng.integers(1, future_len + 1))
    h = min(h, len(values) - min_context)
    c = int(rng.integers(min_context, min(context_len, len(values) - h) + 1))
    end = int(rng.integers(c, len(values) - h + 1))
    history = np.full(context_len, np.nan, np.float32)
    target = np.full(future_len, np.nan, np.float32)
    history[context_len - c:] = values[end - c:end]
    target[:h] = values[end:end + h]
    return history, target


class CorpusWindows(torch.utils.data.IterableDataset):
    """Endless random windows of a corpus folder. Each process of a distributed run
    (and each data-loader worker) reads its own shards, one at a time: memory holds
    one shard, whatever the corpus size. Yields ``history`` (context_len,), ``target``
    (future_len,) float32 with NaN where absent."""

    def __init__(self, folder: str | os.PathLike, context_len: int, future_len: int,
                 min_context: int, seed: int = 0, windows_per_shard: int = 4096):
        self.folder = Path(folder)
        self.shards = json.loads((self.folder / "manifest.json").read_text())["shards"]
        self.context_len, self.future_len, self.min_context = context_len, future_len, min_context
        self.seed, self.windows_per_shard = seed, windows_per_shard

    def mine(self) -> list[str]:
        """The shards of this process and worker."""
        rank, world = process_rank()
        info = torch.utils.data.get_worker_info()
        workers, worker = (1, 0) if info is None else (info.num_workers, info.id)
        slot, slots = rank * workers + worker, world * workers
        return [s for k, s in enumerate(self.shards) if k % slots == slot % len(self.shards)] \
            or self.shards[slot % len(self.shards):][:1]

    def __iter__(self):
        rank, _ = process_rank()
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, rank, 0 if info is None else info.id])
        shards = self.mine()
        while True:
            shard = shards[int(rng.integers(len(shards)))]
            series = [np.asarray(v, np.float64) for v in
                      pl.read_parquet(self.folder / shard, columns=["values"])["values"]]
            series = [s for s in series if len(s) >= self.min_context + 1]
            for _ in range(self.windows_per_shard):
                history, target = sample_window(rng, series[int(rng.integers(len(series)))],
                                                self.context_len, self.future_len,
                                                self.min_context)
                yield {"history": torch.from_numpy(history), "target": torch.from_numpy(target)}
