"""Evaluation: metrics, baselines, backtests with conformal calibration, and plots.

Sits above the data layer and beside the estimator: the backtest functions drive
any object with the estimator's ``fit``/``predict`` contract, so nothing here
imports the estimator itself.
"""

from .backtesting import (
    InSampleWarning,
    backtest,
    conformal_errors,
    conformal_halfwidth,
    forecast_error,
)
from .baselines import Drift, Naive, SeasonalNaive
from .metrics import evaluate

__all__ = ["Drift", "InSampleWarning", "Naive", "SeasonalNaive", "backtest",
           "conformal_errors", "conformal_halfwidth", "evaluate", "forecast_error"]
