"""build_trainer: the only place Lightning trainer arguments are assembled."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint


def build_trainer(*, max_epochs: int, checkpoint_dir: str | Path, patience: int | None,
                  has_validation: bool, gradient_clip: float | None, accelerator: str,
                  devices, precision, progress_bar: bool, logger=False,
                  callbacks: Sequence[Callback] = (), deterministic: bool = False
                  ) -> tuple[L.Trainer, ModelCheckpoint]:
    """A trainer that checkpoints the best (lowest val_loss, or last) and the last epoch,
    stopping early after ``patience`` epochs without improvement."""
    monitor = "val_loss" if has_validation else None
    checkpoint = ModelCheckpoint(dirpath=str(checkpoint_dir), filename="best", monitor=monitor,
                                 mode="min", save_last=True, save_top_k=1,
                                 enable_version_counter=False)
    extra = [checkpoint]
    if has_validation and patience:
        extra.append(EarlyStopping(monitor="val_loss", mode="min", patience=patience))
    trainer = L.Trainer(
        max_epochs=max_epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        gradient_clip_val=gradient_clip,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        logger=logger,
        callbacks=[*extra, *callbacks],
        default_root_dir=str(checkpoint_dir),
        deterministic=deterministic,
        num_sanity_val_steps=0,
    )
    return trainer, checkpoint
