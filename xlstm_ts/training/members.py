"""train_network: one network (or an ensemble of members) trained on one panel."""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass, replace

import lightning as L
from torch import nn

from .. import presets
from ..data import SeriesData, covariate_moments
from ..models import NetworkConfig, build_network
from .blend import (
    blend_val_mse,
    blend_weights,
    choose_blend,
    fold_blend,
    keep_covariate_effect,
)
from .datamodule import WindowDataModule
from .history import LossHistory
from .linear_start import (
    linear_map,
    refit_map,
    ridge_start,
    series_variance,
    shift_linear,
    training_moments,
)
from .module import ForecastModule, OptimConfig
from .trainer import fit_module

log = logging.getLogger("xlstm_ts.training")


@dataclass
class Trained:
    """A trained network (on the CPU, in eval mode) and how its training went; the
    histories and metrics of every member, member 0 first. ``correction_shares``: the
    share ``w`` of each member's trained network in its forecast against its linear
    start (:mod:`.blend`; 1.0 without a linear path or validation);
    ``batches_per_epoch``: the epoch length used. ``start``: the linear start alone,
    as the forecast would be with a share of 0 (None without a linear path or
    validation): what the network's correction is measured against."""

    network: nn.Module
    histories: list[dict]
    metrics: list[dict[str, float]]
    epochs: list[int]
    global_rank: int
    correction_shares: list[float]
    batches_per_epoch: int
    start: nn.Module | None = None


def train_network(config: NetworkConfig, optim: dict, data: SeriesData, regions: dict, *,
                  has_validation: bool, batch_size: int, batches_per_epoch: int | None,
                  min_history: int, max_epochs: int, seed: int, seasons: tuple = (),
                  refit_start: bool = True,
                  checkpoint_dir: str | os.PathLike | None = None, resume: bool = False,
                  ckpt_path: str | None = None, callbacks=(),
                  ema_decay: float | str | None = None, **trainer_options) -> Trained:
    """Train ``config.n_models`` members with seeds ``seed, seed + 1, ...`` (each its own
    Lightning fit, early stopping and best-weights restore) and combine them.

    With ``config.linear_path`` every member starts from the ridge solution of
    :func:`ridge_start` (fitted once; ``seasons`` are the periods of its seasonal
    naive candidates) and no correction; with validation, each member then forecasts
    the blend of its trained weights and that start with the lowest validation error
    (:mod:`.blend`: from the start alone to the trained network alone). With
    ``refit_start``, the start's share of that blend is then solved again on the
    training and validation windows together (:func:`.linear_start.refit_map`; the
    choice of candidates stays validation's).

    ``optim`` holds :class:`OptimConfig` fields except ``total_steps`` (counted from
    the epochs' real length). With a ``checkpoint_dir``, member k > 0 checkpoints to
    its subfolder ``member{k}``; ``resume`` needs a single member. ``ema_decay``: see
    :func:`.trainer.build_trainer`; ``"auto"`` is :func:`xlstm_ts.presets.ema_decay_for`
    the epoch length.
    ``batches_per_epoch`` None: :func:`xlstm_ts.presets.default_batches_per_epoch` of the
    training windows (the value used is ``Trained.batches_per_epoch``)."""
    if resume and config.n_models > 1:
        raise ValueError("resume=True continues one network; it is not available with "
                         "n_models > 1. Refit the ensemble, or resume with n_models=1.")
    member_config = replace(config, n_models=1)
    members, histories, metrics, epochs, shares, starts = [], [], [], [], [], []
    trainer, linear, variance, refit = None, None, None, None
    covariates = covariate_moments(data)
    for k in range(config.n_models):
        L.seed_everything(seed + k, workers=True, verbose=False)
        datamodule = WindowDataModule(
            data, config.lookback, config.horizon, train_region=regions["train"],
            val_region=regions["val"] if has_validation else None, batch_size=batch_size,
            batches_per_epoch=batches_per_epoch, min_history=min_history, seed=seed + k)
        if variance is None:
            variance = series_variance(data, regions["train"][1])
        module = ForecastModule(member_config, OptimConfig(
            **optim, total_steps=max_epochs * datamodule.steps_per_epoch))
        module.net.set_covariate_scaling(**covariates)
        start = None
        if member_config.linear_path:  # start from the least-squares linear forecast
            if linear is None:
                moments = training_moments(module.net, datamodule.train, variance, seed)
                choice = ridge_start(module.net, datamodule.train, datamodule.val, variance,
                                     seed, seasons, moments)
                log.info("linear start: %s", choice)
                linear = {k: v.clone() for k, v in module.net.linear.state_dict().items()}
            module.net.linear.load_state_dict(linear)
            if has_validation and not resume and len(datamodule.val):
                start = copy.deepcopy(module.net)
        losses = LossHistory()
        directory = checkpoint_dir if checkpoint_dir is None or k == 0 else \
            os.path.join(checkpoint_dir, f"member{k}")
        trainer = fit_module(module, datamodule, checkpoint_dir=directory, resume=resume,
                             ckpt_path=ckpt_path, max_epochs=max_epochs,
                             has_validation=has_validation,
                             callbacks=[*callbacks, losses],
                             ema_decay=(presets.ema_decay_for(datamodule.steps_per_epoch)
                                        if ema_decay == "auto" else ema_decay),
                             **trainer_options)
        blend = 1.0
        if start is not None:
            keep_covariate_effect(module.net, start)
            weights = blend_weights(module.net)
            errors = blend_val_mse(module.net, start, datamodule.val, variance, weights,
                                   rows=datamodule.monitored)
            blend = choose_blend(weights, errors)
            fold_blend(module.net, start, blend)
            if refit_start and refit is None:  # the start solved again with validation
                refit = refit_map(start, moments, datamodule.val, variance, choice,
                                  seed, seasons) - linear_map(start)
            if blend < 1.0 and refit_start:
                shift_linear(module.net, (1.0 - blend) * refit)
            if refit_start:
                shift_linear(start, refit)  # the start alone: what a share of 0 forecasts
            starts.append(start.cpu().eval())
        if trainer.is_global_zero:
            _log_member(k, config.n_models, losses.history, blend,
                        getattr(module, "skipped_steps", 0))
        members.append(module.net.cpu().eval())
        histories.append(losses.history)
        metrics.append({k: float(v) for k, v in trainer.callback_metrics.items()})
        epochs.append(trainer.current_epoch)
        shares.append(float(blend))
    network = members[0] if config.n_models == 1 else build_network(config, members).eval()
    start_network = None if len(starts) < config.n_models else (
        starts[0] if config.n_models == 1 else build_network(config, starts).eval())
    return Trained(network, histories, metrics, epochs, trainer.global_rank, shares,
                   datamodule.batches_per_epoch, start_network)


def _log_member(k: int, n_models: int, history: dict, blend: float,
                skipped: int) -> None:
    """One summary line per trained network: epochs, best validation loss, and how much
    of the trained network was kept against its linear start."""
    name = f"member {k + 1}/{n_models}: " if n_models > 1 else ""
    val = [v for v in history["val_loss"] if v is not None]
    best = f", best val_loss {min(val):.4g} at epoch {val.index(min(val)) + 1}" if val else ""
    kept = ("; the linear start was kept (training did not beat it on validation)"
            if blend == 0.0 else "" if blend == 1.0 else
            f"; forecasts {blend:g} x trained + {1 - blend:g} x linear start (validation)")
    if skipped:
        log.warning("%s%d training steps skipped: their gradients were not finite", name,
                    skipped)
    log.info("%strained %d epochs%s%s", name, len(history["epoch"]), best, kept)
