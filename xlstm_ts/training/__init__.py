"""Lightning training: the module, the data module and the one place trainers are built."""

from .datamodule import EpochSampler, WindowDataModule
from .module import ForecastModule, OptimConfig
from .trainer import build_trainer

__all__ = ["EpochSampler", "ForecastModule", "OptimConfig", "WindowDataModule", "build_trainer"]
