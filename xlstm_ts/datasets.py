"""Bundled datasets as long frames, and a seeded synthetic generator for tests.

Files live in the repository's ``datasets/`` folder (see its README for sources
and licenses); nothing is downloaded. Every loader returns a long frame with
columns ``unique_id``, ``ds``, ``y`` as pandas (default) or polars.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import polars as pl

from .data.frames import from_polars, rows_to_long

DATA_DIR = Path(__file__).resolve().parent.parent / "datasets"
ETT_COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
Frame = Literal["pandas", "polars"]


def _path(name: str, path: str | Path | None) -> Path:
    file = Path(path) if path is not None else DATA_DIR / name
    if not file.exists():
        raise FileNotFoundError(f"{file} not found. Pass path= to the file's location.")
    return file


def _out(frame: pl.DataFrame, frame_type: Frame):
    if frame_type not in ("pandas", "polars"):
        raise ValueError(f"frame must be 'pandas' or 'polars'. Got {frame_type!r}.")
    return from_polars(frame, frame_type)


def _single(name: str, value_col: str, path, frame: Frame):
    raw = pl.read_csv(_path(name, path))
    ds = pl.Series("ds", pd.to_datetime(raw[raw.columns[0]].to_pandas())).cast(pl.Datetime("us"))
    long = pl.DataFrame({"unique_id": name.split(".")[0], "ds": ds,
                         "y": raw[value_col].cast(pl.Float64)})
    return _out(long, frame)


def load_airline(*, path: str | Path | None = None, frame: Frame = "pandas"):
    """Box-Jenkins monthly airline passengers, 1949-1960: one series, 144 rows."""
    return _single("airline.csv", "Passengers", path, frame)


def load_sunspots(*, path: str | Path | None = None, frame: Frame = "pandas"):
    """Monthly mean sunspot number, 1749-2009: one series, 3,126 rows."""
    return _single("sunspots_monthly.csv", "sunspots", path, frame)


def _load_ett(name: str, path, columns: Sequence[str] | None, frame: Frame):
    raw = pl.read_csv(_path(name, path), try_parse_dates=True)
    columns = list(columns) if columns is not None else list(ETT_COLUMNS)
    long = raw.unpivot(index="date", on=columns, variable_name="unique_id", value_name="y")
    long = long.select("unique_id", pl.col("date").cast(pl.Datetime("us")).alias("ds"),
                       pl.col("y").cast(pl.Float64))
    return _out(long, frame)


def load_etth1(*, columns: Sequence[str] | None = None, path: str | Path | None = None,
               frame: Frame = "pandas"):
    """ETTh1 (Zhou et al., 2021), hourly, 17,420 steps; one series per channel (7).

    License CC BY-ND 4.0 (``datasets/LICENSE-ETDataset-CC-BY-ND-4.0.txt``).
    """
    return _load_ett("ETTh1.csv", path, columns, frame)


def load_ettm1(path: str | Path, *, columns: Sequence[str] | None = None,
               frame: Frame = "pandas"):
    """ETTm1 (15-minute ETT) from a local copy of ``ETTm1.csv`` (not bundled: 10 MB)."""
    return _load_ett("ETTm1.csv", path, columns, frame)


def load_m4_hourly(split: Literal["train", "test"] = "train", *,
                   path: str | Path | None = None, frame: Frame = "pandas"):
    """M4 Hourly: 414 series with an integer time index ``ds``; ``test`` holds the 48 steps
    after each training series (its ``ds`` continues the training index)."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test'. Got {split!r}.")
    train = _read_m4(_path("m4_hourly_train.csv", path if split == "train" else None))
    long = _m4_long(train)
    if split == "test":
        test = _m4_long(_read_m4(_path("m4_hourly_test.csv", path)))
        offset = long.group_by("unique_id").agg(pl.len().alias("n"))
        long = test.join(offset, on="unique_id").select(
            "unique_id", (pl.col("ds") + pl.col("n")).alias("ds"), "y")
    return _out(long.sort("unique_id", "ds"), frame)


def _read_m4(file: Path) -> pl.DataFrame:
    wide = pl.read_csv(file, infer_schema=False)  # all strings; values cast below
    return wide.with_columns(pl.exclude("V1").cast(pl.Float64))


def _m4_long(wide: pl.DataFrame) -> pl.DataFrame:
    return rows_to_long(wide, id_col="V1").rename({"V1": "unique_id"})


def synthetic(
    n_series: int = 5,
    length: int = 500,
    *,
    freq: str = "1h",
    seasonalities: Sequence[int] = (24, 168),
    trend: float = 0.002,
    noise: float = 0.1,
    covariate_effect: float = 0.0,
    start: str = "2024-01-01",
    seed: int = 0,
    frame: Frame = "pandas",
):
    """Seeded panel: level + trend + sine seasonalities (random phases) + Gaussian noise.

    ``freq`` is a polars duration: ``"15m"`` (minutes), ``"1h"``, ``"1d"``, ``"1w"``,
    ``"1mo"``, ``"1y"``. With ``covariate_effect`` a future-known covariate ``x`` (a
    random 0/1 "promotion") is added and ``y`` moves by ``covariate_effect * x``.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    ids, times, ys, xs = [], [], [], []
    first = pl.Series([pd.Timestamp(start)]).cast(pl.Datetime("us"))
    try:
        last = first.dt.offset_by(_scaled(freq, length - 1))
        grid = pl.datetime_range(first[0], last[0], interval=freq, eager=True)
    except (pl.exceptions.PolarsError, ValueError) as err:
        raise ValueError(f"freq must be a polars duration such as '15m' (minutes), '1h', "
                         f"'1d', '1w' or '1mo'. Got {freq!r}.") from err
    for j in range(n_series):
        level = rng.uniform(5.0, 20.0)
        y = level + trend * level * t
        for period in seasonalities:
            y += rng.uniform(0.5, 2.0) * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        x = (rng.random(length) < 0.1).astype(np.float64)
        y += covariate_effect * x + noise * rng.standard_normal(length)
        ids.append(np.full(length, f"s{j}"))
        times.append(grid)
        ys.append(y)
        xs.append(x)
    data = {"unique_id": np.concatenate(ids), "ds": pl.concat(times),
            "y": np.concatenate(ys)}
    if covariate_effect:
        data["x"] = np.concatenate(xs)
    return _out(pl.DataFrame(data).with_columns(pl.col("ds").cast(pl.Datetime("us"))), frame)


def _scaled(freq: str, k: int) -> str:
    """``"15m", 3`` -> ``"45m"``: a polars duration string times k."""
    digits = freq[: len(freq) - len(freq.lstrip("0123456789"))]
    return f"{int(digits or 1) * k}{freq[len(digits):]}"
