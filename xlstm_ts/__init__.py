"""xlstm-ts: time-series forecasting with xLSTM."""

from ._version import __version__

__all__ = ["XLSTMForecaster", "__version__"]


def __getattr__(name: str):
    # Imported on first use, so `import xlstm_ts.cells` stays free of Lightning and frames.
    if name == "XLSTMForecaster":
        from .forecaster import XLSTMForecaster

        return XLSTMForecaster
    raise AttributeError(f"module 'xlstm_ts' has no attribute {name!r}")
