"""Hyperparameter search for XLSTMForecaster with Optuna.

``tune(df, ...)`` runs a real Optuna study: each trial fits a forecaster on the
history before the last ``horizon`` steps of every series and scores its
forecast of those steps. Validation losses are reported every epoch, so a
pruner stops bad trials early. Studies live in memory or in any RDB storage
(a path means SQLite); re-running with the same study name continues it and
several processes can share one study. Failed trials (NaN loss, out of
memory, invalid combinations) are recorded with their reason and the study
goes on.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import optuna
import polars as pl
import sqlalchemy
import torch
import yaml
from lightning.pytorch.callbacks import Callback

from . import tracking as tracking_lib
from ._checks import Integer, NoneOr, Options, Real
from .data import Frequency, prepare_series
from .data.frames import from_polars, to_polars
from .evaluation import forecast_error
from .forecaster import XLSTMForecaster
from .presets import seasonal_periods

log = logging.getLogger("xlstm_ts.tuning")
# Virtual parameter: how many of the num_blocks blocks are sLSTM (spread evenly).
N_SLSTM = "n_slstm"
_KINDS = ("int", "float", "categorical")
# Trial failures that should not stop a study: NaN losses, invalid combinations, OOM.
_CAUGHT = (FloatingPointError, ValueError, RuntimeError, torch.OutOfMemoryError)


# Fine-tuning a pretrained network (network="tirex2"): what to train, how fast, how long.
FINETUNE_SPACE = {
    "finetune": {"type": "categorical", "choices": ["head", "all"]},
    "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-3, "log": True},
    "max_epochs": {"type": "int", "low": 1, "high": 5},
}


def default_search_space(freq: Frequency | None = None, network: str | None = None
                         ) -> dict[str, dict]:
    """A sensible space for data of frequency ``freq`` (None: an integer index); for
    ``network="tirex2"`` (fine-tuning a pretrained network) :data:`FINETUNE_SPACE`.

    Lookbacks and patches follow the data's usual cycles
    (:func:`xlstm_ts.presets.seasonal_periods`): sub-daily data looks back 4 days to 2
    weeks in patches of a third to a whole day (hourly: 96-336, patches 8-24); daily
    and business-day data 4 to 16 weeks in patches of one or two weeks; data with a
    yearly cycle (weekly, monthly, quarterly) 2 to 4 years in patches of half or a
    whole year; other data 48-168 steps in patches of 8 or 16."""
    if network == "tirex2":
        return {k: dict(v) for k, v in FINETUNE_SPACE.items()}
    periods = seasonal_periods(freq)
    if len(periods) == 2:  # a day and a week of sub-daily steps
        day, week = periods
        lookbacks, patches = [4 * day, week, 2 * week], [day // 3, 2 * day // 3, day]
    elif periods and periods[0] in (5, 7):  # a week of days (or business days)
        week = periods[0]
        lookbacks, patches = [4 * week, 8 * week, 16 * week], [week, 2 * week]
    elif periods:  # a year of weeks, months or quarters
        year = periods[0]
        lookbacks, patches = [2 * year, 3 * year, 4 * year], [max(1, year // 2), year]
    else:
        lookbacks, patches = [48, 96, 168], [8, 16]
    return {
        "network": {"type": "categorical", "choices": ["patch", "xlstmtime"]},
        "lookback": {"type": "categorical", "choices": lookbacks},
        "patch_len": {"type": "categorical", "choices": patches},
        "d_model": {"type": "categorical", "choices": [32, 64, 128]},
        "num_blocks": {"type": "int", "low": 1, "high": 4},
        N_SLSTM: {"type": "int", "low": 0, "high": 2},
        "num_heads": {"type": "categorical", "choices": [2, 4]},
        "dropout": {"type": "float", "low": 0.0, "high": 0.3},
        "learning_rate": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
        "batch_size": {"type": "categorical", "choices": [32, 64, 128]},
        "loss": {"type": "categorical", "choices": ["mse", "mae", "huber"]},
    }


def load_search_space(space: Mapping | str | Path | None, freq: Frequency | None = None,
                      network: str | None = None) -> dict:
    """A validated search space from a dict, a YAML file, or the default (for the
    frequency ``freq`` and the fixed ``network``)."""
    if space is None:
        return default_search_space(freq, network)
    if isinstance(space, (str, Path)):
        with open(space) as f:
            space = yaml.safe_load(f)
    if not isinstance(space, Mapping):
        raise TypeError(f"search_space must be a dict or a YAML file path. Got {type(space)}.")
    known = set(XLSTMForecaster().get_params()) | {N_SLSTM}
    out = {}
    for name, spec in space.items():
        if name not in known:
            raise ValueError(f"search_space: unknown parameter {name!r}. Tunable parameters "
                             f"are XLSTMForecaster arguments and {N_SLSTM!r}.")
        if not isinstance(spec, Mapping) or spec.get("type") not in _KINDS:
            raise ValueError(f"search_space.{name}: needs type in {list(_KINDS)}. Got {spec!r}.")
        if spec["type"] == "categorical":
            if not spec.get("choices"):
                raise ValueError(f"search_space.{name}: categorical needs non-empty choices.")
        elif not ("low" in spec and "high" in spec and spec["low"] <= spec["high"]):
            raise ValueError(f"search_space.{name}: needs low <= high. Got {spec!r}.")
        out[name] = dict(spec)
    return out


def _suggest(trial: optuna.Trial, space: dict) -> dict[str, Any]:
    params = {}
    for name, spec in space.items():
        if spec["type"] == "int":
            params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                             step=int(spec.get("step", 1)),
                                             log=bool(spec.get("log", False)))
        elif spec["type"] == "float":
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                               log=bool(spec.get("log", False)))
        else:
            params[name] = trial.suggest_categorical(name, list(spec["choices"]))
    return params


def _to_forecaster_params(params: dict, fixed: dict) -> dict:
    """Resolve the virtual ``n_slstm`` into ``slstm_at`` and keep patches inside the lookback."""
    merged = {**fixed, **params}
    n_slstm = merged.pop(N_SLSTM, None)
    if n_slstm is not None:
        blocks = merged.get("num_blocks", XLSTMForecaster().num_blocks)
        k = min(int(n_slstm), blocks)
        merged["slstm_at"] = tuple(sorted({round((i + 0.5) * blocks / k - 0.5)
                                           for i in range(k)})) if k else ()
    if "patch_len" in merged:
        merged.setdefault("patch_stride", max(1, merged["patch_len"] // 2))
    return merged


class OptunaPruning(Callback):
    """Report ``val_loss`` to the trial after every validation; raise TrialPruned when the
    pruner says so. Records the epochs trained as a trial attribute."""

    def __init__(self, trial: optuna.Trial):
        self.trial = trial

    def on_validation_end(self, trainer, module) -> None:
        if trainer.sanity_checking or "val_loss" not in trainer.callback_metrics:
            return
        epoch = trainer.current_epoch
        value = float(trainer.callback_metrics["val_loss"])
        self.trial.set_user_attr("epochs_trained", epoch + 1)
        self.trial.report(value if math.isfinite(value) else float("inf"), step=epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch} with val_loss {value:.4g}")


@dataclass
class TuneResult:
    """Outcome of :func:`tune`.

    ``best_score`` is the best trial's error on the last ``horizon`` steps, which that
    trial's model never saw. The refitted ``forecaster`` trains on all of ``df``, those
    steps included, so it has no held-out score; ``refit_val_loss`` is its own best
    validation loss (on the last windows of ``df``, the early-stopping criterion).
    """

    best_params: dict
    best_score: float
    study: optuna.Study
    forecaster: XLSTMForecaster | None
    refit_val_loss: float | None = None


TUNE_METRICS = ("mae", "mse", "rmse", "smape")


def _check_tune_args(n_trials, timeout, metric, direction, storage, n_jobs, refit,
                     worker) -> None:
    """The study's own arguments, checked before any trial trains."""
    if n_trials is not None:
        # 0 trials only makes sense for the final refit of a shared study
        Integer(0 if (refit and storage is not None) or worker else 1)("n_trials", n_trials)
    if n_trials is None and timeout is None:
        raise ValueError("n_trials and timeout are both None: the search would never end. "
                         "Set n_trials, timeout or both.")
    NoneOr(Real(0.0, None, open="low"))("timeout", timeout)
    Options(TUNE_METRICS)("metric", metric)
    Options(("minimize", "maximize"))("direction", direction)
    Integer(-1)("n_jobs", n_jobs)
    if storage is not None and "://" not in str(storage):
        folder = Path(storage).resolve().parent
        if not folder.is_dir():
            raise ValueError(f"storage {str(storage)!r}: the folder {folder} does not exist. "
                             f"Create it, or pass a path in an existing folder.")


def _storage(storage: str | Path | None):
    """None, or an RDB storage whose running trials send heartbeats: a trial of a killed
    worker is marked FAIL after two minutes instead of staying RUNNING forever."""
    if storage is None:
        return None
    text = str(storage)
    url = text if "://" in text else f"sqlite:///{Path(text).resolve()}"
    # SQLite serialises writers; workers wait for the lock instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(5):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=30,
                                              grace_period=120)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.OperationalError):
            # workers starting together race to create the schema of a new storage;
            # the losers find it created on the next try
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))


def _pruner(name: str | None, max_epochs: int):
    if name is None:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max_epochs)
    raise ValueError(f"pruner must be 'median', 'hyperband' or None. Got {name!r}.")


def _sampler(name: str, seed: int | None):
    samplers = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
    if name not in samplers:
        raise ValueError(f"sampler must be one of {list(samplers)}. Got {name!r}.")
    return samplers[name](seed=seed)


def tune(df, search_space=None, n_trials: int | None = 20, timeout: float | None = None,
         metric: str = "mae", direction: str = "minimize", storage=None,
         study_name: str | None = None, pruner: str | None = "median", sampler: str = "tpe",
         n_jobs: int = 1, refit: bool = True, static_df=None, random_state: int | None = 0,
         tracking=None, worker: bool = False, **fixed_params) -> TuneResult:
    """Search XLSTMForecaster hyperparameters on ``df``.

    Args:
        df: long frame as for :meth:`XLSTMForecaster.fit`.
        search_space: dict or YAML path of ``{param: {type: int|float|categorical, ...}}``;
            ``n_slstm`` sets how many blocks are sLSTM. Default: by the data's frequency.
        n_trials, timeout: stop after either.
        metric: forecast metric on each series' last ``horizon`` steps (``mae``, ``mse``,
            ``rmse``, ``smape``).
        storage: None (in memory), a file path (SQLite) or any SQLAlchemy URL.
        study_name: with a storage, re-running with the same name continues the study.
        pruner: ``"median"``, ``"hyperband"`` or None. sampler: ``"tpe"`` or ``"random"``.
        refit: fit a forecaster with the best parameters on all of ``df``.
        worker: one of several processes or machines sharing ``storage`` and
            ``study_name``: it runs its ``n_trials`` (so K workers run K x n_trials in
            all, each trial numbered once by the storage), samples without a seed (seeded
            workers would propose the same parameters) and never refits; a final call
            with ``n_trials=0`` refits the study's best.
        tracking: record the study in MLflow: a parent run with one nested run per
            trial (parameters, losses, score) and the refitted model.
        **fixed_params: XLSTMForecaster arguments held fixed (e.g. ``horizon=24``).
    """
    if worker and (storage is None or study_name is None):
        raise ValueError("worker=True needs a shared storage and a study_name.")
    _check_tune_args(n_trials, timeout, metric, direction, storage, n_jobs, refit, worker)
    seed = None if worker else random_state
    refit = refit and not worker
    target = tracking_lib.resolve(tracking)
    if target is None:
        return _tune(df, search_space, n_trials, timeout, metric, direction, storage,
                     study_name, pruner, sampler, n_jobs, refit, static_df, random_state,
                     seed, None, fixed_params)
    tracking_lib.activate(target)
    with mlflow.start_run(run_name=f"tune:{study_name or 'study'}"):
        result = _tune(df, search_space, n_trials, timeout, metric, direction, storage,
                       study_name, pruner, sampler, n_jobs, refit, static_df, random_state,
                       seed, {"uri": target.uri, "experiment": target.experiment},
                       fixed_params)
        mlflow.log_params({f"best.{k}": v for k, v in result.best_params.items()})
        mlflow.log_metric(f"best_{metric}", result.best_score)
        mlflow.set_tags({"optuna.study_name": result.study.study_name,
                         "optuna.best_trial": str(result.study.best_trial.number)})
        if result.refit_val_loss is not None:
            mlflow.log_metric("refit_val_loss", result.refit_val_loss)
    return result


def _log_trial(metric: str):
    """An Optuna callback logging one line per finished trial."""
    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        state = trial.state.name.lower()
        if trial.state == optuna.trial.TrialState.COMPLETE:
            log.info("trial %d: %s %.4g with %s (best so far %.4g, trial %d)", trial.number,
                     metric, trial.value, trial.params, study.best_value,
                     study.best_trial.number)
        else:
            reason = trial.user_attrs.get("fail_reason", "")
            log.info("trial %d %s after %s epochs%s", trial.number, state,
                     trial.user_attrs.get("epochs_trained", "?"),
                     f": {reason}" if reason else "")
    return report


def _tune(df, search_space, n_trials, timeout, metric, direction, storage, study_name, pruner,
          sampler, n_jobs, refit, static_df, random_state, sampler_seed, tracking,
          fixed_params):
    fixed = {"progress_bar": False, "random_state": random_state, **fixed_params}
    horizon = fixed.get("horizon", XLSTMForecaster().horizon)
    # the frequency, read with the frame handling the trials get (a gap the caller
    # allowed with fill_missing is no error here either)
    probe = prepare_series(df, id_col=fixed.get("id_col", "unique_id"),
                           time_col=fixed.get("time_col", "ds"),
                           target_col=fixed.get("target_col", "y"),
                           future_covariates=tuple(fixed.get("future_covariates", ())),
                           past_covariates=tuple(fixed.get("past_covariates", ())),
                           calendar=tuple(fixed.get("calendar", ())),
                           fill_missing=fixed.get("fill_missing"),
                           target_missing=fixed.get("target_missing", "raise"))
    space = load_search_space(search_space, probe.freq, fixed.get("network"))
    history, _ = _split_last(df, horizon, fixed.get("id_col", "unique_id"),
                             fixed.get("time_col", "ds"))

    def objective(trial: optuna.Trial) -> float:
        params = _to_forecaster_params(_suggest(trial, space), fixed)
        callbacks = [*(params.pop("callbacks", None) or ()), OptunaPruning(trial)]
        try:
            model = XLSTMForecaster(**params, callbacks=callbacks)
            try:
                tracking_lib.tracked_fit(model, history, static_df=static_df,
                                         tracking=tracking, log_model=False,
                                         run_name=f"trial-{trial.number}")
            except optuna.TrialPruned:
                if tracking is not None:  # a pruned trial did not fail: its run was stopped
                    client = mlflow.MlflowClient()
                    client.set_tag(model.run_id_, "optuna.pruned", "true")
                    client.set_terminated(model.run_id_, status="KILLED")
                raise
            trial.set_user_attr("epochs_trained", model.epochs_trained_)
            score = forecast_error(model, df, metric=metric, static_df=static_df)
            if tracking is not None:
                client = mlflow.MlflowClient()
                client.log_metric(model.run_id_, metric, score)
                client.set_tag(model.run_id_, "optuna.trial", str(trial.number))
            if not math.isfinite(score):
                raise FloatingPointError(f"{metric} is {score}")
        except _CAUGHT as err:  # recorded with the trial, which Optuna marks FAIL
            trial.set_user_attr("fail_reason", f"{type(err).__name__}: {err}")
            raise
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial instead
    study = optuna.create_study(
        storage=_storage(storage), study_name=study_name, direction=direction,
        pruner=_pruner(pruner, fixed.get("max_epochs", XLSTMForecaster().max_epochs)),
        sampler=_sampler(sampler, sampler_seed), load_if_exists=True)
    study.optimize(objective, n_trials=n_trials, timeout=timeout, n_jobs=n_jobs,
                   catch=_CAUGHT, callbacks=[_log_trial(metric)])
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        reasons = [t.user_attrs["fail_reason"] for t in study.trials
                   if "fail_reason" in t.user_attrs]
        why = f" The first failure: {reasons[0]}" if reasons else ""
        raise RuntimeError(f"No trial of study {study.study_name!r} completed "
                           f"({len(study.trials)} tried).{why}")
    best = study.best_trial
    forecaster = None
    if refit:
        forecaster = XLSTMForecaster(**_to_forecaster_params(best.params, fixed))
        tracking_lib.tracked_fit(forecaster, df, static_df=static_df, tracking=tracking,
                                 run_name="refit-best")
        if tracking is not None and getattr(forecaster, "run_id_", None):
            # the refit's own numbers are its losses; the trial's score is labelled as such
            client = mlflow.MlflowClient()
            client.set_tag(forecaster.run_id_, "optuna.best_trial", str(best.number))
            client.log_metric(forecaster.run_id_, f"best_trial_{metric}", best.value)
    return TuneResult(best.params, best.value, study, forecaster,
                      None if forecaster is None else forecaster.best_val_loss_)


def _split_last(df, horizon: int, id_col: str, time_col: str):
    """The frame without the last ``horizon`` rows of each series (caller's library)."""
    frame, kind = to_polars(df)
    if id_col not in frame.columns:
        return from_polars(frame.sort(time_col).head(frame.height - horizon), kind), kind
    position = pl.int_range(pl.len()).over(id_col)
    kept = frame.sort(id_col, time_col).filter(position < pl.len().over(id_col) - horizon)
    return from_polars(kept, kind), kind
