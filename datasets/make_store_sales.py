"""Writes ``store_sales.csv`` and ``store_sales_future.csv``: three synthetic daily
store series with a holiday flag, for the scheduled-forecast example
(``configs/store_sales.yaml``). Seeded, so a re-run writes the same bytes.

    python datasets/make_store_sales.py

Sales: a level per store, a slow trend, a weekly cycle (weekends busier), a yearly
swell, +60% on holidays and the day before, multiplicative noise; 12 days of each
store are missing from the history (records lost), as in a real export.
"""

from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).parent
START, END, AHEAD = "2023-01-01", "2024-12-31", 14
STORES = {"north": 120.0, "centre": 300.0, "south": 80.0}
HOLIDAYS = ["01-01", "04-07", "05-01", "07-14", "08-15", "11-01", "11-11", "12-25", "12-26"]


def holiday_flags(days: np.ndarray) -> np.ndarray:
    month_day = np.array([str(d)[5:10] for d in days])
    return np.isin(month_day, HOLIDAYS).astype(np.int8)


def main() -> None:
    rng = np.random.default_rng(7)
    days = np.arange(np.datetime64(START), np.datetime64(END) + AHEAD + 1)
    holiday = holiday_flags(days)
    eve = np.roll(holiday, -1)
    t = np.arange(len(days))
    weekday = (days.astype("datetime64[D]").astype(np.int64) + 3) % 7  # 0 = Monday
    rows, future = [], []
    n_hist = len(days) - AHEAD
    for store, level in STORES.items():
        weekly = 1.0 + 0.25 * (weekday >= 5) - 0.1 * (weekday == 0)
        yearly = 1.0 + 0.15 * np.sin(2 * np.pi * t / 365.25 + rng.uniform(0, 1))
        trend = 1.0 + 0.0004 * t * rng.uniform(0.5, 1.5)
        lift = 1.0 + 0.6 * np.maximum(holiday, 0.5 * eve)
        sales = level * weekly * yearly * trend * lift * rng.lognormal(0.0, 0.08, len(days))
        lost = rng.choice(np.arange(30, n_hist - 30), size=12, replace=False)
        keep = np.ones(n_hist, dtype=bool)
        keep[lost] = False
        rows.append(pl.DataFrame({"store": store, "date": days[:n_hist][keep],
                                  "sales": np.round(sales[:n_hist][keep], 1),
                                  "holiday": holiday[:n_hist][keep]}))
        future.append(pl.DataFrame({"store": store, "date": days[n_hist:],
                                    "holiday": holiday[n_hist:]}))
    pl.concat(rows).with_columns(pl.col("date").cast(pl.Date)).write_csv(
        HERE / "store_sales.csv")
    pl.concat(future).with_columns(pl.col("date").cast(pl.Date)).write_csv(
        HERE / "store_sales_future.csv")


if __name__ == "__main__":
    main()
