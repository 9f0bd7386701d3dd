"""build_trainer and fit_module: the only place Lightning trainers are assembled and run."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping, EMAWeightAveraging, ModelCheckpoint

from .._ranks import is_rank_zero

__all__ = ["build_trainer", "fit_module", "is_rank_zero", "quiet_lightning"]


@contextlib.contextmanager
def quiet_lightning() -> Iterator[None]:
    """Lightning's INFO lines (devices, tips, "max_epochs reached") and its deprecation
    warnings muted while a fit runs, unless ``xlstm_ts`` logs at DEBUG: the library
    logs its own line per epoch and summary (``xlstm_ts.training``). Restored after."""
    if logging.getLogger("xlstm_ts").isEnabledFor(logging.DEBUG):
        yield
        return
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*LeafSpec.*")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def build_trainer(*, max_epochs: int, checkpoint_dir: str | Path, patience: int | None,
                  has_validation: bool, gradient_clip: float | None, accelerator: str,
                  devices, precision, progress_bar: bool, logger=False,
                  callbacks: Sequence[Callback] = (), deterministic: bool = False,
                  strategy="auto", num_nodes: int = 1, ema_decay: float | None = None
                  ) -> tuple[L.Trainer, ModelCheckpoint]:
    """A trainer that checkpoints the best (lowest val_loss, or last) and the last epoch,
    stopping early after ``patience`` epochs without improvement.

    With ``ema_decay``, an exponential moving average of the weights (Lightning's
    ``EMAWeightAveraging``, updated every step) is what validation scores and what
    the checkpoints hold as the model's weights, so the best checkpoint restored
    after training is the average at the best epoch.

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
    if ema_decay is not None:
        extra.append(EMAWeightAveraging(decay=ema_decay))
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


def fit_module(module: L.LightningModule, datamodule: L.LightningDataModule, *,
               checkpoint_dir: str | os.PathLike | None, resume: bool = False,
               ckpt_path: str | None = None, **trainer_options) -> L.Trainer:
    """Train ``module`` with a trainer from :func:`build_trainer` (``trainer_options``);
    afterwards it holds the best validation weights (the last ones without validation).

    ``resume`` continues from ``checkpoint_dir/last.ckpt`` (or ``ckpt_path``). Without
    a ``checkpoint_dir`` the checkpoints go to a temporary directory that is removed
    when training ends, so no fit leaves files behind."""
    own_dir = checkpoint_dir is None
    directory = tempfile.mkdtemp(prefix="xlstm_ts_") if own_dir else os.fspath(checkpoint_dir)
    try:
        if resume and ckpt_path is None:
            ckpt_path = os.path.join(directory, "last.ckpt")
            if not os.path.exists(ckpt_path):
                raise ValueError(f"resume=True but {ckpt_path} does not exist; set "
                                 f"checkpoint_dir to the directory of the killed fit.")
        with quiet_lightning():
            trainer, checkpoint = build_trainer(checkpoint_dir=directory, **trainer_options)
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        best = checkpoint.best_model_path or checkpoint.last_model_path
        # rank 0 wrote it; other ranks on another node without shared storage keep the
        # last weights, which only rank 0 ever saves anyway
        if best and os.path.exists(best):
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
    finally:
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
    return trainer
