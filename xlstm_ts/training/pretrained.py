"""Fine-tuning a pretrained TiRex-2 network with Lightning, on the forecaster's
windows, with the pinball loss of its quantiles; the pretrained weights are kept
when fine-tuning does not beat them on validation."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import lightning as L
import torch

from ..data import SeriesData
from ..models.tirex2 import TiRex2Network
from ..models.tirex2.windows import quantile_loss, window_quantiles
from .datamodule import WindowDataModule
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


def fine_tune(net: TiRex2Network, data: SeriesData, regions: dict, *, lookback: int,
              horizon: int, finetune: str, has_validation: bool, learning_rate: float,
              weight_decay: float, batch_size: int, batches_per_epoch: int | None,
              max_epochs: int, seed: int, **trainer_options) -> FineTuned:
    """Fine-tune ``net`` (a copy) on the windows of ``data``; keep the pretrained
    weights when the fine-tuned ones do not score a lower validation loss."""
    L.seed_everything(seed, workers=True, verbose=False)
    datamodule = WindowDataModule(
        data, lookback, horizon, train_region=regions["train"],
        val_region=regions["val"] if has_validation else None, batch_size=batch_size,
        batches_per_epoch=batches_per_epoch,
        min_history=min(lookback, 2 * net.config.patch_size), seed=seed)
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
