"""build_trainer: the only place Lightning trainer arguments are assembled."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint


def is_rank_zero() -> bool:
    """Whether this process is (or will be, once a launcher starts the others) global rank
    0 of a distributed run; True outside one. Read from the variables launchers set
    (torchrun's RANK, Lightning's LOCAL_RANK and NODE_RANK, SLURM_PROCID), so it holds
    before the trainer exists: only rank 0 opens MLflow runs and writes models."""
    env = os.environ
    for name in ("RANK", "SLURM_PROCID"):
        if name in env:
            return int(env[name]) == 0
    return int(env.get("LOCAL_RANK", 0)) == 0 and int(env.get("NODE_RANK", 0)) == 0


def build_trainer(*, max_epochs: int, checkpoint_dir: str | Path, patience: int | None,
                  has_validation: bool, gradient_clip: float | None, accelerator: str,
                  devices, precision, progress_bar: bool, logger=False,
                  callbacks: Sequence[Callback] = (), deterministic: bool = False,
                  strategy="auto", num_nodes: int = 1) -> tuple[L.Trainer, ModelCheckpoint]:
    """A trainer that checkpoints the best (lowest val_loss, or last) and the last epoch,
    stopping early after ``patience`` epochs without improvement.

    ``strategy``, ``devices`` and ``num_nodes`` go to Lightning as they are (e.g.
    ``"ddp"``, 2, 1). The datamodule's samplers shard by rank themselves, so
    Lightning's sampler replacement is off; checkpoints are written by rank 0 only."""
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
        num_nodes=num_nodes,
        strategy=strategy,
        use_distributed_sampler=False,
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
