"""Lightning training: the module, the data module and the one place trainers are built."""

from .datamodule import EpochSampler, ShardSampler, WindowDataModule
from .history import LossHistory, best_val_loss
from .members import Trained, train_network
from .module import ForecastModule, OptimConfig
from .trainer import build_trainer, fit_module, is_rank_zero

__all__ = ["EpochSampler", "ForecastModule", "LossHistory", "OptimConfig", "ShardSampler",
           "Trained", "WindowDataModule", "best_val_loss", "build_trainer", "fit_module",
           "is_rank_zero", "train_network"]
