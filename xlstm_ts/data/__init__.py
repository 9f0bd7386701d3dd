"""The data layer: frames in, validated per-series tensors, windows, scalers."""

from .append import append_observations, continue_series, every_series_in_order
from .covariates import CALENDAR_FEATURES
from .frames import from_polars, long_to_wide, rows_to_long, to_polars, wide_to_long
from .freq import Frequency, infer_frequency
from .future import future_covariates
from .panel import Columns, SeriesData
from .scalers import SeriesScaler, covariate_moments
from .series import check_compatible, check_min_length, prepare_series
from .windows import (
    ETT_BORDERS,
    WindowDataset,
    ett_regions,
    last_windows,
    time_split_regions,
)

__all__ = [
    "CALENDAR_FEATURES", "ETT_BORDERS", "Columns", "Frequency", "SeriesData", "SeriesScaler",
    "WindowDataset", "append_observations", "check_compatible", "check_min_length",
    "continue_series", "covariate_moments", "ett_regions", "every_series_in_order",
    "from_polars",
    "future_covariates", "infer_frequency", "last_windows", "long_to_wide", "prepare_series",
    "rows_to_long",
    "time_split_regions", "to_polars", "wide_to_long",
]
