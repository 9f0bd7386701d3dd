"""Lightning training: the module, the data module and the one place trainers are built."""

from .datamodule import EpochSampler, WindowDataModule
from .history import LossHistory
from .module import ForecastModule, OptimConfig
from .trainer import build_trainer

__all__ = ["EpochSampler", "ForecastModule", "LossHistory", "OptimConfig", "WindowDataModule",
           "build_trainer"]
