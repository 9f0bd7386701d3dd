"""Series that share their timestamps as inputs of one another (``network="mixer"``):
each series' rows get the values of every channel at the same time as past-only
covariates ``_channel_0 .. _channel_{C-1}`` (channels in a fixed order)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from .frames import from_polars, to_polars
from .times import as_long_frame


def channel_names(n_channels: int) -> list[str]:
    """The covariate columns holding the channels, in channel order."""
    return [f"_channel_{k}" for k in range(n_channels)]


def add_channel_columns(df, id_col: str, time_col: str, target_col: str,
                        channels: Sequence | None = None):
    """``df`` (long, pandas or polars) with one column per channel holding that series'
    target at the row's time, and the channel ids in column order.

    ``channels`` (the fitted series, in order) fixes the set; None takes the sorted ids
    of ``df``. Every series must be a channel and hold the same timestamps: a
    ValueError names the series that break either rule."""
    frame, kind = to_polars(df)
    if id_col not in frame.columns:
        raise ValueError(f"network='mixer' forecasts several series jointly: df needs the "
                         f"id column {id_col!r}.")
    frame = as_long_frame(frame, id_col, time_col)
    ids = frame[id_col].cast(pl.String)
    present = sorted(ids.unique().to_list())
    # channel k must be series k: the panel orders series by their ids' sort order
    order = (frame[id_col].unique().sort().cast(pl.String).to_list() if channels is None
             else [str(c) for c in channels])
    unknown = sorted(set(present) - set(order))
    missing = sorted(set(order) - set(present))
    if unknown or missing:
        raise ValueError(
            "network='mixer' forecasts exactly the series it was fitted on, together: "
            + (f"df has series it was not fitted on: {unknown[:5]}. " if unknown else "")
            + (f"df lacks fitted series {missing[:5]}. " if missing else "")
            + "Pass rows for every fitted series, or use network='patch' for other series.")
    if len(order) < 2:
        raise ValueError("network='mixer' mixes two or more series that share their "
                         "timestamps; df holds one. Use network='patch'.")
    keyed = frame.with_columns(ids.alias("__channel"))
    wide = keyed.pivot(on="__channel", index=time_col, values=target_col,
                       aggregate_function="first")
    counts = keyed.group_by("__channel").agg(pl.col(time_col).n_unique().alias("n"))
    if counts["n"].n_unique() > 1 or wide.height != int(counts["n"].max()):
        short = counts.filter(pl.col("n") < wide.height)["__channel"].to_list()
        raise ValueError(
            f"network='mixer' needs every series at the same timestamps; series "
            f"{sorted(short)[:5]} miss some of the {wide.height} times the others have. "
            f"Align them (e.g. fill the gaps) or use network='patch'.")
    names = channel_names(len(order))
    wide = wide.select(time_col, *(pl.col(c).alias(n) for c, n in zip(order, names,
                                                                        strict=True)))
    return from_polars(frame.join(wide, on=time_col, how="left"), kind), order
