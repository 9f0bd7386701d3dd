"""Fine-tuning a pretrained TiRex-2 network with Lightning, on the forecaster's
windows, with the pinball loss of its quantiles; the pretrained weights are kept
when fine-tuning does not beat them on validation."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, default_collate

from .. import presets
from ..data import SeriesData
from ..data.lazy import PanelWindows, StagedPanel, validation_windows
from ..models.tirex2 import TiRex2Network
from ..models.tirex2.windows import quantile_loss, window_quantiles
from .datamodule import MONITOR_WINDOWS, WindowDataModule
from .history import LossHistory
from .trainer import fit_module

log = logging.getLogger("xlstm_ts.training")

FINETUNE = ("all", "head")


def trainable(net: TiRex2Network, finetune: str) -> list[torch.nn.Parameter]:
    """The parameters fine-tuning updates: all, or (``"head"``) the output head, the
    stack's output norm and the last block."""
    if finetune == "all":
        return list(net.parameters())
    modules = (net.output_patch_embedding, net.stack_out_norm, net.stack[-1])
    return [p for m in modules for p in m.parameters()]


class PretrainedModule(L.LightningModule):
    """A TiRex-2 network trained on window batches (``val_loss``: the same loss)."""

    def __init__(self, net: TiRex2Network, finetune: str, learning_rate: float,
                 weight_decay: float):
        super().__init__()
        self.net, self.finetune = net, finetune
        self.learning_rate, self.weight_decay = learning_rate, weight_decay

    def _loss(self, batch) -> torch.Tensor:
        return quantile_loss(window_quantiles(self.net, batch), self.net.quantiles, batch)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"fine-tuning loss became {loss.item()}; lower "
                                     f"learning_rate.")
        self.log("train_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, batch_size=len(batch["target"]))
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(trainable(self.net, self.finetune), lr=self.learning_rate,
                                 weight_decay=self.weight_decay)


@torch.no_grad()
def validation_loss(net: TiRex2Network, datamodule: WindowDataModule) -> float | None:
    """The mean window loss of ``net`` on the monitored validation windows (None
    without validation windows)."""
    if datamodule.val is None or len(datamodule.val) == 0:
        return None
    was = net.training
    net.eval()
    total, count = 0.0, 0
    rows = datamodule.monitored
    for start in range(0, len(rows), 256):
        batch = datamodule.val[rows[start:start + 256]]
        total += float(quantile_loss(window_quantiles(net, batch), net.quantiles, batch)) \
            * len(batch["target"])
        count += len(batch["target"])
    net.train(was)
    return total / count


@dataclass
class FineTuned:
    network: TiRex2Network
    kept_pretrained: bool
    pretrained_val_loss: float | None
    val_loss: float | None
    epochs: int
    history: dict


def _windows(data, regions, lookback, horizon, has_validation, batch_size, batches_per_epoch,
             min_history, seed) -> WindowDataModule:
    """Windows with at least ``min_history`` observed steps of history (the network
    reads the rest of its context as missing); where no series has that many before
    its validation part (short yearly series), windows with any history."""
    def make(least):
        return WindowDataModule(
            data, lookback, horizon, train_region=regions["train"],
            val_region=regions["val"] if has_validation else None, batch_size=batch_size,
            batches_per_epoch=batches_per_epoch, min_history=least, seed=seed)

    try:
        return make(min_history)
    except ValueError:
        if min_history == 1:
            raise
        log.info("fine-tuning: no series has %d steps before its validation part; "
                 "windows with shorter histories are used", min_history)
        return make(1)


def fine_tune(net: TiRex2Network, data: SeriesData, regions: dict, *, lookback: int,
              horizon: int, finetune: str, has_validation: bool, learning_rate: float,
              weight_decay: float, batch_size: int, batches_per_epoch: int | None,
              max_epochs: int, seed: int, **trainer_options) -> FineTuned:
    """Fine-tune ``net`` (a copy) on the windows of ``data``; keep the pretrained
    weights when the fine-tuned ones do not score a lower validation loss."""
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = _windows(data, regions, lookback, horizon, has_validation, batch_size,
                          batches_per_epoch, min(lookback, 2 * net.config.patch_size), seed)
    return _tune(net, datamodule, finetune, has_validation, learning_rate, weight_decay,
                 max_epochs, trainer_options)


def fine_tune_staged(net: TiRex2Network, staged: StagedPanel, val: int, *, lookback: int,
                     horizon: int, finetune: str, learning_rate: float, weight_decay: float,
                     batch_size: int, batches_per_epoch: int | None, max_epochs: int,
                     seed: int, **trainer_options) -> FineTuned:
    """:func:`fine_tune` on a panel staged on disk (:func:`~xlstm_ts.data.lazy.
    stage_panel`): windows drawn shard by shard, validation on each series' window
    starting its last ``val`` steps (at most ``MONITOR_WINDOWS`` series)."""
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = StagedWindows(staged, lookback, horizon, val, batch_size, batches_per_epoch,
                               min(lookback, 2 * net.config.patch_size), seed)
    return _tune(net, datamodule, finetune, datamodule.val is not None, learning_rate,
                 weight_decay, max_epochs, trainer_options)


def _tune(net, datamodule, finetune, has_validation, learning_rate, weight_decay, max_epochs,
          trainer_options) -> FineTuned:
    before = validation_loss(net, datamodule) if has_validation else None
    module = PretrainedModule(copy.deepcopy(net).train(), finetune, learning_rate, weight_decay)
    losses = LossHistory()
    trainer_options["callbacks"] = [*trainer_options.get("callbacks", ()), losses]
    trainer = fit_module(module, datamodule, max_epochs=max_epochs,
                         has_validation=has_validation, **trainer_options)
    tuned = module.net.eval()
    after = validation_loss(tuned, datamodule) if has_validation else None
    keep = before is not None and after is not None and not after < before
    if keep:
        log.info("fine-tuning did not beat the pretrained weights on validation "
                 "(%.4g against %.4g): the pretrained weights are kept", after, before)
    else:
        log.info("fine-tuned: validation loss %s (pretrained %s)", after, before)
    return FineTuned(network=net.eval() if keep else tuned, kept_pretrained=keep,
                     pretrained_val_loss=before, val_loss=after,
                     epochs=trainer.current_epoch, history=losses.history)


class _Windows(torch.utils.data.Dataset):
    """Windows held in memory; indexed by an int (one window) or an index array (a
    batch, as :class:`~xlstm_ts.data.WindowDataset`)."""

    def __init__(self, windows: list[dict]):
        self.windows = windows

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.windows[int(index)]
        return default_collate([self.windows[int(i)] for i in index])


class StagedWindows(L.LightningDataModule):
    """Training windows of a staged panel drawn shard by shard (``PanelWindows``),
    ``batches_per_epoch`` batches an epoch; validation windows held in memory."""

    def __init__(self, staged: StagedPanel, lookback: int, horizon: int, val: int,
                 batch_size: int, batches_per_epoch: int | None, min_history: int, seed: int):
        super().__init__()
        room = staged.lengths - val - horizon  # history steps available before each target
        if not (room >= min_history).any():
            min_history = 1
        if not (room >= 1).any():
            raise ValueError(f"No training windows: every series is shorter than its "
                             f"validation part ({val}) + horizon ({horizon}) + 1 step.")
        windows = int(np.clip(room - min_history + 1, 0, None).sum())
        self.batch_size = batch_size
        self.batches_per_epoch = (presets.default_batches_per_epoch(windows)
                                  if batches_per_epoch is None
                                  else batches_per_epoch)
        self.train = PanelWindows(staged, lookback, horizon, val,
                                  self.batches_per_epoch * batch_size, min_history, seed)
        held = validation_windows(staged, lookback, horizon, val, MONITOR_WINDOWS)
        self.val = _Windows(held) if held else None
        self.monitored = np.arange(len(held))

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, batch_size=self.batch_size)

    def val_dataloader(self):
        return DataLoader(self.val, batch_size=256) if self.val is not None else []
