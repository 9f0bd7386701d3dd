"""LossHistory: per-epoch losses kept on the fitted forecaster (``loss_history_``)."""

from __future__ import annotations

import logging

from lightning.pytorch.callbacks import Callback

log = logging.getLogger("xlstm_ts.training")


class LossHistory(Callback):
    """Records ``train_loss`` and ``val_loss`` (None without validation) each epoch."""

    def __init__(self) -> None:
        self.history: dict[str, list] = {"epoch": [], "train_loss": [], "val_loss": []}

    def on_train_epoch_end(self, trainer, module) -> None:
        metrics = trainer.callback_metrics
        self.history["epoch"].append(trainer.current_epoch)
        for name in ("train_loss", "val_loss"):
            self.history[name].append(float(metrics[name]) if name in metrics else None)
        if trainer.is_global_zero:  # one line per epoch, for logs that are read later
            losses = "  ".join(f"{name} {self.history[name][-1]:.4g}"
                               for name in ("train_loss", "val_loss")
                               if self.history[name][-1] is not None)
            log.info("epoch %d/%d  %s", trainer.current_epoch + 1, trainer.max_epochs, losses)
