"""Lightning training: the module, the data module and the one place trainers are built."""

from .datamodule import EpochSampler, ShardSampler, WindowDataModule
from .history import LossHistory
from .members import Trained, train_network
from .module import ForecastModule, OptimConfig
from .trainer import build_trainer, fit_module, is_rank_zero

__all__ = ["EpochSampler", "ForecastModule", "LossHistory", "OptimConfig", "ShardSampler",
           "Trained", "WindowDataModule", "build_trainer", "fit_module",
           "is_rank_zero", "train_network"]
