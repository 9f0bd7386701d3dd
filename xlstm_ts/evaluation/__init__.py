"""Evaluation: metrics, baselines, backtests and the errors that calibrate bands, and plots.

Sits above the data layer and beside the estimator: the backtest functions drive
any object with the estimator's ``fit``/``predict`` contract, so nothing here
imports the estimator itself.
"""

from .backtesting import (
    InSampleWarning,
    backtest,
    conformal_errors,
    forecast_error,
)
from .baselines import Drift, Naive, SeasonalNaive
from .metrics import evaluate

__all__ = ["Drift", "InSampleWarning", "Naive", "SeasonalNaive", "backtest",
           "conformal_errors", "evaluate", "forecast_error"]
