"""XLSTMForecaster: a scikit-learn-style estimator for long dataframes.

fit = validate the frame -> split the last ``val_size`` steps of each series for
validation -> train the network with Lightning (early stopping, best-checkpoint
restore) -> keep the last ``lookback`` steps of every series for forecasting.
predict returns a frame of the caller's library with ``[id_col, time_col,
"y_pred"]`` and ``y_pred_q{q}`` per quantile level for probabilistic heads.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

import lightning as L
import mlflow
import numpy as np
import polars as pl
import torch
from sklearn.base import BaseEstimator
from tqdm.auto import tqdm

from . import __version__
from . import tracking as tracking_lib
from ._checks import check_choice, check_positive_int
from ._io import atomic_write
from .cells import BACKENDS
from .data import (
    Columns,
    Frequency,
    SeriesData,
    append_observations,
    check_compatible,
    check_min_length,
    continue_series,
    future_covariates,
    last_windows,
    prepare_series,
    time_split_regions,
)
from .data.frames import from_polars, to_polars
from .data.series import SINGLE_SERIES_ID, normalise_time
from .metrics import evaluate
from .models import HEADS, NETWORKS, NetworkConfig
from .plotting import plot_forecast, plot_training
from .training import (
    ForecastModule,
    LossHistory,
    WindowDataModule,
    build_trainer,
    is_rank_zero,
)

FORMAT_VERSION = 1
PRED_COL = "y_pred"
PREDICT_CHUNK = 1024  # series per network call at predict time
log = logging.getLogger("xlstm_ts")


def quantile_column(level: float) -> str:
    """Column name of a quantile forecast, e.g. ``y_pred_q0.1``."""
    return f"{PRED_COL}_q{level:g}"


class XLSTMForecaster(BaseEstimator):
    """Global xLSTM forecaster for many series at once.

    Defaults (patched xLSTM encoder, lookback 168, patches of 16 with stride 8,
    d_model 64, blocks [mLSTM, sLSTM], 20 epochs of 50 batches of 64 windows,
    AdamW with warm-up + cosine) suit hourly data; for daily data lower
    ``lookback`` (e.g. 56) and ``patch_len`` (7). The learning rate 1e-2 was
    chosen by ``benchmarks/defaults.py``: best of {1e-3, 3e-3, 1e-2} both on ETTh1
    (backtest MSE 0.315 vs 0.326 at 1e-3) and on a panel with a future covariate
    (MAE 0.153 vs 0.700), one seed each. For long horizons on a small panel a
    smaller, more regularised network generalises better: on ETTh1 (7 series) at
    horizons 192 to 720, ``d_model=16, dropout=0.3`` had 3 to 11% lower validation
    MSE than the defaults (``benchmarks/results/accuracy-ett.md``).

    Args (all keyword-only, stored as given):
        lookback, horizon: history length fed to the network, steps forecast at once.
        network: ``"patch"`` or ``"xlstmtime"``.
        d_model, num_blocks, slstm_at, num_heads, dropout: the xLSTM stack.
        patch_len, patch_stride: patching of the lookback (``network="patch"``).
        head: ``"point"``, ``"quantile"``, ``"normal"`` or ``"studentt"``.
        loss: point-head loss, ``"mse"``, ``"mae"`` or ``"huber"``.
        quantiles: levels returned by probabilistic heads (and trained by ``"quantile"``).
        learning_rate, weight_decay, schedule, warmup: AdamW with warm-up + cosine or
            one-cycle.
        batch_size, max_epochs, batches_per_epoch: training length.
        val_size: validation steps at the end of each series (default: ``horizon``;
            0 disables validation and early stopping).
        patience: early-stopping patience in epochs.
        gradient_clip: max gradient norm (None: off).
        id_col, time_col, target_col, future_covariates, past_covariates, calendar,
        fill_missing, target_missing: frame handling, see :func:`xlstm_ts.data.prepare_series`.
        accelerator, devices, precision: passed to Lightning (``"auto"`` uses a GPU
            when present).
        strategy, num_nodes: data-parallel training, passed to Lightning (e.g.
            ``strategy="ddp", devices=4, num_nodes=2``). Each process draws
            ``batches_per_epoch`` batches of ``batch_size`` windows per epoch, disjoint
            shares of one epoch's draw; losses are reduced across processes; only global
            rank 0 writes checkpoints, MLflow runs and saved models (see
            ``docs/scale-out.md``).
        backend: the cells' kernels: ``"auto"`` (fused Triton kernels on a CUDA device
            when Triton is installed, PyTorch otherwise), ``"triton"`` or ``"torch"``.
        progress_bar: Lightning's progress bar.
        logger, callbacks: any Lightning logger and callbacks.
        checkpoint_dir: where checkpoints go (a temporary directory when None; set it
            to resume a killed fit with ``fit(..., resume=True)``).
        random_state: seed making CPU runs reproducible.
    """

    def __init__(self, *, lookback: int = 168, horizon: int = 24, network: str = "patch",
                 d_model: int = 64, num_blocks: int = 2, slstm_at: tuple = (1,),
                 num_heads: int = 4, dropout: float = 0.1, patch_len: int = 16,
                 patch_stride: int = 8, head: str = "point", loss: str = "mse",
                 quantiles: tuple = (0.1, 0.5, 0.9), learning_rate: float = 1e-2,
                 weight_decay: float = 1e-2, schedule: str = "cosine", warmup: float = 0.05,
                 batch_size: int = 64, max_epochs: int = 20, batches_per_epoch: int = 50,
                 val_size: int | None = None, patience: int = 5,
                 gradient_clip: float | None = 1.0, id_col: str = "unique_id",
                 time_col: str = "ds", target_col: str = "y", future_covariates: tuple = (),
                 past_covariates: tuple = (), calendar: tuple = (),
                 fill_missing: str | None = None, target_missing: str = "raise",
                 accelerator: str = "auto", devices="auto", precision="32-true",
                 strategy: str = "auto", num_nodes: int = 1, backend: str = "auto",
                 progress_bar: bool = True, logger=False, callbacks=None,
                 checkpoint_dir: str | None = None, random_state: int | None = None):
        self.lookback = lookback
        self.horizon = horizon
        self.network = network
        self.d_model = d_model
        self.num_blocks = num_blocks
        self.slstm_at = slstm_at
        self.num_heads = num_heads
        self.dropout = dropout
        self.patch_len = patch_len
        self.patch_stride = patch_stride
        self.head = head
        self.loss = loss
        self.quantiles = quantiles
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.schedule = schedule
        self.warmup = warmup
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.batches_per_epoch = batches_per_epoch
        self.val_size = val_size
        self.patience = patience
        self.gradient_clip = gradient_clip
        self.id_col = id_col
        self.time_col = time_col
        self.target_col = target_col
        self.future_covariates = future_covariates
        self.past_covariates = past_covariates
        self.calendar = calendar
        self.fill_missing = fill_missing
        self.target_missing = target_missing
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self.precision = precision
        self.backend = backend
        self.progress_bar = progress_bar
        self.logger = logger
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.random_state = random_state

    # ------------------------------------------------------------------ helpers

    def _validate_params(self) -> None:
        for name in ("lookback", "horizon", "d_model", "num_blocks", "num_heads", "patch_len",
                     "patch_stride", "batch_size", "max_epochs", "batches_per_epoch",
                     "num_nodes"):
            check_positive_int(name, getattr(self, name))
        if not isinstance(self.strategy, str):
            raise TypeError(f"strategy must be a Lightning strategy name such as 'auto' or "
                            f"'ddp'. Got {type(self.strategy).__name__}.")
        check_choice("network", self.network, NETWORKS)
        check_choice("head", self.head, HEADS)
        check_choice("schedule", self.schedule, ("cosine", "onecycle"))
        check_choice("backend", self.backend, BACKENDS)
        if any(not 0.0 < float(q) < 1.0 for q in self.quantiles) or not self.quantiles:
            raise ValueError(f"quantiles must be levels in (0, 1). Got {self.quantiles}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive. Got {self.learning_rate}.")
        if self.val_size is not None and (not isinstance(self.val_size, int) or self.val_size < 0):
            raise ValueError(f"val_size must be a non-negative int or None. Got {self.val_size!r}.")
        if self.network == "patch" and self.lookback < self.patch_len:
            raise ValueError(f"lookback ({self.lookback}) must be at least patch_len "
                             f"({self.patch_len}). Raise lookback or lower patch_len.")

    def _prepare(self, df, static_df=None, static_categories=None) -> SeriesData:
        return prepare_series(
            df, id_col=self.id_col, time_col=self.time_col, target_col=self.target_col,
            future_covariates=self.future_covariates, past_covariates=self.past_covariates,
            static_df=static_df, calendar=self.calendar, fill_missing=self.fill_missing,
            target_missing=self.target_missing, static_categories=static_categories)

    def _network_config(self, data: SeriesData) -> NetworkConfig:
        return NetworkConfig(
            lookback=self.lookback, horizon=self.horizon, network=self.network,
            d_model=self.d_model, num_blocks=self.num_blocks, slstm_at=tuple(self.slstm_at),
            num_heads=self.num_heads, dropout=self.dropout, patch_len=self.patch_len,
            patch_stride=self.patch_stride, head=self.head, loss=self.loss,
            quantiles=tuple(float(q) for q in self.quantiles),
            n_past=data.past.shape[1], n_future=data.future.shape[1],
            n_static=data.static.shape[1], backend=self.backend).validate()

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise RuntimeError(f"This {type(self).__name__} instance is not fitted yet. "
                               "Call 'fit' with appropriate arguments before using this "
                               "estimator.")

    # ------------------------------------------------------------------ fit

    def fit(self, df, static_df=None, val_size: int | None = None, *, resume: bool = False,
            ckpt_path: str | None = None, tracking=None,
            registered_model_name: str | None = None, log_model: bool = True):
        """Train on the long frame ``df`` (see the class docstring for the columns).

        ``resume=True`` continues from ``checkpoint_dir/last.ckpt`` (or ``ckpt_path``)
        and ends where an uninterrupted fit would. ``tracking`` (True, a URI, an
        experiment name or a dict, see :mod:`xlstm_ts.tracking`) records the run in
        MLflow: parameters, data summary, per-epoch losses, a forecast plot and the
        model as a pyfunc (registered under ``registered_model_name`` if given).
        """
        self._validate_params()
        # other ranks of a data-parallel run train alongside rank 0 but record nothing
        target = tracking_lib.resolve(tracking) if is_rank_zero() else None
        if target is None:
            return self._fit(df, static_df, val_size, resume, ckpt_path, [])
        tracking_lib.activate(target)  # fail fast, before training
        with mlflow.start_run(nested=mlflow.active_run() is not None):
            params = {k: str(v) for k, v in self.get_params().items()
                      if k not in ("logger", "callbacks")}
            mlflow.log_params(params)
            mlflow.set_tags({**tracking_lib.package_versions(),
                             "git_commit": tracking_lib.git_commit() or "unknown"})
            self._fit(df, static_df, val_size, resume, ckpt_path, [tracking_lib.EpochMetrics()])
            try:
                mlflow.log_params(tracking_lib.data_summary(self.data_))
                history = _as_pandas(df)
                mlflow.log_figure(plot_forecast(
                    history, self.predict(), id_col=self.id_col, time_col=self.time_col,
                    target_col=self.target_col, max_series=4), "forecast.png")
                mlflow.log_figure(plot_training(self), "training.png")
                mlflow.log_dict({"params": params, "network": _jsonable(asdict(self.config_))},
                                "config.json")
                if log_model:
                    self.model_uri_ = tracking_lib.log_forecaster(self, history,
                                                                  registered_model_name)
                self.run_id_ = mlflow.active_run().info.run_id
            except Exception as err:  # the trained model must survive a logging failure
                tracking_lib.warn_logging_failed(err)
        return self

    def _fit(self, df, static_df, val_size, resume, ckpt_path, extra_callbacks):
        val = self.val_size if val_size is None else val_size
        val = self.horizon if val is None else val
        data = self._prepare(df, static_df)
        data = check_min_length(data, self.lookback + self.horizon + val)
        regions = time_split_regions(data, val, 0)
        config = self._network_config(data)
        seed = 0 if self.random_state is None else int(self.random_state)
        L.seed_everything(seed, workers=True, verbose=False)

        total_steps = self.max_epochs * self.batches_per_epoch
        module = ForecastModule(asdict(config), {
            "learning_rate": self.learning_rate, "weight_decay": self.weight_decay,
            "schedule": self.schedule, "warmup": self.warmup, "total_steps": total_steps})
        datamodule = WindowDataModule(
            data, self.lookback, self.horizon, train_region=regions["train"],
            val_region=regions["val"] if val else None, batch_size=self.batch_size,
            samples_per_epoch=self.batches_per_epoch * self.batch_size, seed=seed)
        directory = self.checkpoint_dir or tempfile.mkdtemp(prefix="xlstm_ts_")
        if resume and ckpt_path is None:
            ckpt_path = os.path.join(directory, "last.ckpt")
            if not os.path.exists(ckpt_path):
                raise ValueError(f"resume=True but {ckpt_path} does not exist; set "
                                 f"checkpoint_dir to the directory of the killed fit.")
        losses = LossHistory()
        trainer, checkpoint = build_trainer(
            max_epochs=self.max_epochs, checkpoint_dir=directory, patience=self.patience,
            has_validation=bool(val), gradient_clip=self.gradient_clip,
            accelerator=self.accelerator, devices=self.devices, precision=self.precision,
            strategy=self.strategy, num_nodes=self.num_nodes,
            progress_bar=self.progress_bar, logger=self.logger,
            callbacks=[*(self.callbacks or ()), *extra_callbacks, losses], deterministic=False)
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path)
        best = checkpoint.best_model_path or checkpoint.last_model_path
        # rank 0 wrote it; other ranks on another node without shared storage keep the
        # last weights, which only rank 0 ever saves anyway
        if best and os.path.exists(best):
            state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
            module.load_state_dict(state)
        self.network_ = module.net.cpu().eval()
        self.__dict__.pop("stream_state_", None)  # a refit forgets the carried state
        self.config_ = config
        self.data_ = data
        self.freq_ = data.freq
        self.epochs_trained_ = trainer.current_epoch
        self.global_rank_ = trainer.global_rank
        self.history_ = {k: float(v) for k, v in trainer.callback_metrics.items()}
        self.loss_history_ = losses.history
        return self

    # ------------------------------------------------------------------ predict

    def _chunks(self, n: int, what: str):
        """Start indices of ``PREDICT_CHUNK``-series chunks, with a progress bar when a
        person watches (``progress_bar`` and an interactive stderr) and there are several."""
        starts = range(0, n, PREDICT_CHUNK)
        show = bool(self.progress_bar) and sys.stderr.isatty() and len(starts) > 1
        return tqdm(starts, desc=what, unit="chunk", disable=not show, leave=False)

    @torch.no_grad()
    def _forecast(self, data: SeriesData, future_ahead: torch.Tensor, state=None):
        """Point (n, H) and quantiles (n, H, Q) or None, in data units: from the last
        ``lookback`` steps of each series of ``data``, or from a carried stream ``state``.

        The network sees ``PREDICT_CHUNK`` series at a time, so activation memory stays
        bounded however many series are forecast.
        """
        net = self.network_
        windows = last_windows(data, self.lookback, future_ahead) if state is None else None
        points, quants = [], []
        for start in self._chunks(data.n_series, "forecast"):
            part = slice(start, start + PREDICT_CHUNK)
            if state is None:
                params, stats = net({k: v[part] for k, v in windows.items()})
            else:
                params, stats = net.head_from({k: v[part] for k, v in state.items()},
                                              future_ahead[part])
            points.append(net.denormalize(net.head.point(params), stats))
            if self.head != "point":
                quants.append(net.denormalize(
                    net.head.quantiles(params, self.config_.quantiles), stats))
        return torch.cat(points), (torch.cat(quants) if quants else None)

    # ------------------------------------------------------------------ streaming

    @torch.no_grad()
    def _encoded_state(self) -> dict[str, torch.Tensor]:
        """The stream state of every fitted series, encoded from its last ``lookback``
        steps (what :meth:`predict` sees)."""
        d = self.data_
        windows = last_windows(d, self.lookback, torch.zeros(d.n_series, 0, d.future.shape[1]))
        parts = [self.network_.encode({k: v[start:start + PREDICT_CHUNK]
                                       for k, v in windows.items()})
                 for start in self._chunks(d.n_series, "encode")]
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    @torch.no_grad()
    def _advance(self, state: dict, steps: dict, series: np.ndarray) -> dict:
        """The states of rows ``series`` (n,) of ``state`` advanced over ``steps``
        (n, T, ...); ``state`` itself is left as it was."""
        parts = []
        for start in range(0, len(series), PREDICT_CHUNK):
            rows = torch.from_numpy(series[start:start + PREDICT_CHUNK])
            part = slice(start, start + PREDICT_CHUNK)
            parts.append(self.network_.advance({k: v[rows] for k, v in state.items()},
                                               {k: v[part] for k, v in steps.items()}))
        return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}

    def update(self, df, *, skip_seen: bool = False) -> XLSTMForecaster:
        """Absorb new observations of fitted series; :meth:`predict` (without ``df``) then
        forecasts from their new end.

        ``df`` holds, per series, the steps right after those already absorbed (the
        same columns as in fit). With ``network="xlstmtime"`` each series carries a
        recurrent state that advances over the new steps only, O(new steps) instead of
        re-encoding ``lookback`` steps. The state is first encoded from the last
        ``lookback`` steps, then advanced, so forecasts equal re-encoding that whole
        span (anchor window plus new steps) with the anchor window's normalisation,
        to float32 round-off; they drift from a fresh sliding-window forecast as the
        anchor ages (older steps fade through the forget gates but are not dropped,
        and the RevIN statistics stay the anchor's). :meth:`reset_state` re-anchors.
        ``network="patch"`` has no such state (patch tokens carry position embeddings
        and are flattened into the head): its window rolls forward and predict
        re-encodes it. ``skip_seen=True`` leaves out (and logs) rows at or before a
        series' last absorbed time, so a re-run scheduled job is harmless.
        """
        self._check_fitted()
        new = self._prepare(df, None, self.data_.static_categories)
        new, codes, skipped = continue_series(self.data_, new, skip_seen=skip_seen)
        if skipped:
            log.info("update: %d rows were already absorbed and are left out", skipped)
        if not new.n_series:
            return self
        if self.network_.streaming:
            state = getattr(self, "stream_state_", None)
            if state is None:  # anchor: the window predict would encode now
                state = self._encoded_state()
            advanced = []  # all groups first: a failure leaves the model as it was
            for T in np.unique(new.lengths):  # series with equal counts of new steps
                group = np.flatnonzero(new.lengths == T)
                rows = torch.from_numpy(new.indptr[group][:, None] + np.arange(T))
                steps = {"history": new.target[rows], "history_mask": new.observed[rows],
                         "past": new.past[rows], "future": new.future[rows],
                         "static": self.data_.static[torch.from_numpy(codes[group])]}
                advanced.append((codes[group], self._advance(state, steps, codes[group])))
            for series, values in advanced:
                rows = torch.from_numpy(series)
                for k, v in values.items():
                    state[k][rows] = v
            self.stream_state_ = state
        self.data_ = append_observations(self.data_, new, codes, keep=self.lookback)
        return self

    def reset_state(self) -> XLSTMForecaster:
        """Drop the carried stream state: the next :meth:`predict` or :meth:`update`
        re-encodes each series' last ``lookback`` steps (a fresh anchor). A scheduled job
        can call it periodically to bound the drift described in :meth:`update`."""
        self._check_fitted()
        self.__dict__.pop("stream_state_", None)
        return self

    def predict(self, df=None, future_df=None, horizon: int | None = None, static_df=None,
                level: tuple[float, ...] = ()):
        """Forecast ``horizon`` steps (default: the trained horizon) after the end of each
        series: of the training data, or of the history ``df`` (same or new series).

        Longer horizons than trained are rolled out recursively, feeding point forecasts
        back as history. ``future_df`` supplies future-known covariates. ``level`` (e.g.
        ``(80, 95)``) adds conformal intervals calibrated by :meth:`conformalize`.
        """
        self._check_fitted()
        if level and not hasattr(self, "conformal_errors_"):
            raise ValueError("level= needs conformal calibration: call conformalize(df) first.")
        if any(not 0 < float(lv) < 100 for lv in level):
            raise ValueError(f"level must hold percentages in (0, 100). Got {level}.")
        horizon = self.horizon if horizon is None else horizon
        check_positive_int("horizon", horizon)
        if df is None:
            data = self.data_
        else:
            data = self._prepare(df, static_df, self.data_.static_categories)
            check_compatible(self.data_, data, allow_new_ids=True)
        if self.config_.n_past and horizon > self.horizon:
            raise ValueError(f"horizon {horizon} exceeds the trained horizon {self.horizon} and "
                             f"past-only covariates cannot be rolled forward. Refit with "
                             f"horizon={horizon} or without past_covariates.")
        ahead = future_covariates(self.data_, data, future_df, horizon)
        state = getattr(self, "stream_state_", None) if df is None else None
        points, quants = [], []
        current = data
        for start in range(0, horizon, self.horizon):
            block = ahead[:, start:start + self.horizon]
            if block.shape[1] < self.horizon:  # last partial block: pad, keep the head shape
                pad = self.horizon - block.shape[1]
                block = torch.cat([block, block[:, -1:].expand(-1, pad, -1)], dim=1)
            point, quant = self._forecast(current, block, state)
            points.append(point)
            quants.append(quant)
            if start + self.horizon < horizon:
                current = _append(current, point, block)
                if state is not None:  # a new dict: the carried state stays as it was
                    n, H = point.shape
                    state = self._advance(state, {
                        "history": point, "history_mask": torch.ones(n, H, dtype=torch.bool),
                        "past": torch.zeros(n, H, self.config_.n_past), "future": block,
                        "static": data.static}, np.arange(n))
        point = torch.cat(points, dim=1)[:, :horizon]
        last = pl.Series(data.times[data.indptr[1:] - 1])
        columns = {
            self.id_col: np.repeat(data.ids, horizon),
            self.time_col: data.freq.future(last, horizon) if data.freq is not None
            else pl.Series([None] * (data.n_series * horizon)),
            PRED_COL: point.reshape(-1).double().numpy(),
        }
        if quants[0] is not None:
            quant = torch.cat(quants, dim=1)[:, :horizon]
            for j, q in enumerate(self.config_.quantiles):
                columns[quantile_column(q)] = quant[..., j].reshape(-1).double().numpy()
        for lv in level:
            half = np.tile(self._conformal_halfwidth(float(lv), horizon), data.n_series)
            columns[f"{PRED_COL}_lo{lv:g}"] = columns[PRED_COL] - half
            columns[f"{PRED_COL}_hi{lv:g}"] = columns[PRED_COL] + half
        return from_polars(pl.DataFrame(columns), data.kind)

    # ------------------------------------------------------------------ evaluation

    def backtest(self, df, n_windows: int = 3, step: int | None = None,
                 refit: bool | int = False, static_df=None, tracking=None):
        """Rolling-origin evaluation on the long frame ``df``.

        The last ``n_windows`` cutoffs of every series are ``step`` (default: horizon)
        apart, the last one leaving exactly ``horizon`` steps after it. At each cutoff
        the model forecasts from the history before it: fitted once on the history
        before the first cutoff when ``refit=False`` (or not yet fitted), refitted at
        every cutoff with ``True``, every ``refit`` cutoffs with an int. Returns the
        forecasts with ``cutoff`` (last history time) and the actual ``target_col``.
        With ``tracking``, MAE and MSE per horizon step are logged to an MLflow run.
        """
        target = tracking_lib.resolve(tracking)
        if target is None:
            return self._backtest(df, n_windows, step, refit, static_df)
        tracking_lib.activate(target)
        with mlflow.start_run(nested=mlflow.active_run() is not None, run_name="backtest"):
            result = self._backtest(df, n_windows, step, refit, static_df)
            frame, _ = to_polars(result)
            per_step = frame.with_columns(
                pl.int_range(pl.len()).over(self.id_col, "cutoff").alias("step"),
                (pl.col(PRED_COL) - pl.col(self.target_col)).alias("err"),
            ).group_by("step").agg(pl.col("err").abs().mean().alias("mae"),
                                   (pl.col("err") ** 2).mean().alias("mse")).sort("step")
            for row in per_step.iter_rows(named=True):
                mlflow.log_metrics({"backtest_mae": row["mae"], "backtest_mse": row["mse"]},
                                   step=row["step"] + 1)
            mlflow.log_metrics({"backtest_mae_all": float(per_step["mae"].mean()),
                                "backtest_mse_all": float(per_step["mse"].mean())})
            mlflow.log_params({"backtest.n_windows": n_windows, "backtest.refit": str(refit)})
        return result

    def _backtest(self, df, n_windows, step, refit, static_df):
        check_positive_int("n_windows", n_windows)
        step = self.horizon if step is None else check_positive_int("step", step)
        if isinstance(refit, bool):
            refit_every = 1 if refit else 0
        else:
            refit_every = check_positive_int("refit", refit)
        frame, kind = to_polars(df)
        if self.time_col not in frame.columns:
            raise ValueError(f"df has no time column {self.time_col!r} (time_col).")
        # parsed times, so forecasts (datetimes) join the actuals even for string dates
        frame = normalise_time(frame, self.time_col)
        if self.id_col not in frame.columns:
            frame = frame.with_columns(pl.lit(SINGLE_SERIES_ID).alias(self.id_col))
        frame = frame.sort(self.id_col, self.time_col).with_columns(
            pl.int_range(pl.len()).over(self.id_col).alias("__pos"),
            pl.len().over(self.id_col).alias("__len"))
        results = []
        for k in range(n_windows):
            offset = self.horizon + (n_windows - 1 - k) * step  # steps after the cutoff
            history = frame.filter(pl.col("__pos") < pl.col("__len") - offset)
            actual = frame.filter((pl.col("__pos") >= pl.col("__len") - offset)
                                  & (pl.col("__pos") < pl.col("__len") - offset + self.horizon))
            history, actual = history.drop("__pos", "__len"), actual.drop("__pos", "__len")
            if (refit_every and k % refit_every == 0) or not hasattr(self, "network_"):
                self.fit(history, static_df=static_df)
            future = actual if (self.future_covariates or self.calendar) else None
            forecast = self.predict(df=history, future_df=future, static_df=static_df)
            forecast = pl.from_pandas(forecast) if not isinstance(forecast, pl.DataFrame) \
                else forecast
            cutoffs = history.group_by(self.id_col).agg(pl.col(self.time_col).max()
                                                        .alias("cutoff"))
            forecast = forecast.with_columns(pl.col(self.time_col).cast(
                actual[self.time_col].dtype))
            joined = forecast.join(cutoffs, on=self.id_col).join(
                actual.select(self.id_col, self.time_col, self.target_col),
                on=[self.id_col, self.time_col], how="left")
            results.append(joined)
        out = pl.concat(results).select(self.id_col, self.time_col, "cutoff", self.target_col,
                                        pl.exclude(self.id_col, self.time_col, "cutoff",
                                                   self.target_col))
        return from_polars(out, kind)

    def score(self, df, metric: str = "mae", static_df=None) -> float:
        """``metric`` (``"mae"``, ``"mse"``, ``"rmse"``, ``"smape"``; lower is better) of
        forecasts for the last ``horizon`` steps of each series of ``df``, made from the
        history before them with the fitted model."""
        self._check_fitted()
        forecasts = self.backtest(df, n_windows=1, refit=False, static_df=static_df)
        return evaluate(forecasts, metrics=(metric,), id_col=self.id_col,
                        target_col=self.target_col)[metric]

    def conformalize(self, df, n_windows: int = 5, step: int | None = None, static_df=None):
        """Calibrate split-conformal intervals on backtest residuals of the fitted model.

        Runs :meth:`backtest` (no refit) on ``df`` and keeps the absolute errors per
        horizon step; afterwards ``predict(level=...)`` adds symmetric intervals
        ``y_pred_lo{level}`` / ``y_pred_hi{level}`` whose half-width at step h is the
        finite-sample-corrected ``level`` quantile of those errors.
        """
        self._check_fitted()
        forecasts = self.backtest(df, n_windows=n_windows, step=step, refit=False,
                                  static_df=static_df)
        frame, _ = to_polars(forecasts)
        frame = frame.with_columns(
            pl.int_range(pl.len()).over(self.id_col, "cutoff").alias("__step"),
            (pl.col(self.target_col) - pl.col(PRED_COL)).abs().alias("__err"))
        errors = np.full((frame.height // self.horizon, self.horizon), np.nan)
        for h in range(self.horizon):
            err = frame.filter(pl.col("__step") == h)["__err"].to_numpy()
            errors[: len(err), h] = err
        self.conformal_errors_ = errors
        return self

    def _conformal_halfwidth(self, level: float, horizon: int) -> np.ndarray:
        """(horizon,) half-widths; steps beyond the calibrated horizon reuse the last one."""
        errors = self.conformal_errors_
        widths = []
        for h in range(errors.shape[1]):
            e = np.sort(errors[:, h][~np.isnan(errors[:, h])])
            rank = min(int(np.ceil((len(e) + 1) * level / 100.0)), len(e)) - 1
            widths.append(e[max(rank, 0)])
        widths = np.array(widths)
        return np.concatenate([widths, np.full(max(horizon - len(widths), 0), widths[-1])])[
            :horizon]

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to directory ``path``: ``config.json`` and tensors
        (``weights.pt``, ``history.pt``) loadable with ``weights_only=True``. In a
        data-parallel run only global rank 0 writes; the other ranks return."""
        self._check_fitted()
        if not is_rank_zero():
            return
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        params = {k: v for k, v in self.get_params().items() if k not in ("logger", "callbacks")}
        d = self.data_
        keep = last_windows(d, self.lookback, torch.zeros(d.n_series, 0, d.future.shape[1]))
        config = {
            "format_version": FORMAT_VERSION, "xlstm_ts_version": __version__,
            "params": _jsonable(params), "network": _jsonable(asdict(self.config_)),
            "freq": None if d.freq is None else [d.freq.kind, d.freq.step],
            "ids": _jsonable(d.ids.tolist()), "kind": d.kind,
            "static_categories": d.static_categories, "calendar": list(d.calendar),
            "columns": _jsonable(asdict(d.columns)),
            "time_dtype": str(d.times.dtype),
            "loss_history": getattr(self, "loss_history_", None),
        }
        tensors = {"lengths": torch.from_numpy(d.lengths), "times": torch.from_numpy(
            d.times.astype("datetime64[us]").astype(np.int64) if d.times.dtype.kind == "M"
            else d.times.astype(np.int64)), **{k: v for k, v in keep.items()
                                              if k in ("history", "history_mask", "past")},
            "future": keep["future"], "static": d.static}
        if hasattr(self, "conformal_errors_"):
            tensors["conformal_errors"] = torch.from_numpy(self.conformal_errors_)
        atomic_write(path / "weights.pt", lambda f: torch.save(self.network_.state_dict(), f))
        stream = path / "stream.pt"
        if getattr(self, "stream_state_", None) is not None:
            atomic_write(stream, lambda f: torch.save(self.stream_state_, f))
        elif stream.exists():
            stream.unlink()
        atomic_write(path / "history.pt", lambda f: torch.save(tensors, f))
        atomic_write(path / "config.json",
                     lambda f: Path(f).write_text(json.dumps(config, indent=2)))

    @classmethod
    def load(cls, path: str | os.PathLike) -> XLSTMForecaster:
        """Load a model written by :meth:`save` (no pickled objects are read), or logged to
        MLflow (``runs:/<run_id>/model``, ``models:/<name>/<version>``)."""
        if str(path).startswith(("runs:/", "models:/")):
            path = tracking_lib.download_model(str(path))
        path = Path(path)
        config = json.loads((path / "config.json").read_text())
        version = config.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"{path} holds model format version {version!r}; this xlstm-ts "
                             f"({__version__}) reads version {FORMAT_VERSION}. Re-save the model "
                             f"with a matching xlstm-ts.")
        params = config["params"]
        for key in ("slstm_at", "quantiles", "future_covariates", "past_covariates", "calendar"):
            params[key] = tuple(params[key])
        model = cls(**params)
        net_cfg = config["network"]
        net_cfg["slstm_at"] = tuple(net_cfg["slstm_at"])
        net_cfg["quantiles"] = tuple(net_cfg["quantiles"])
        model.config_ = NetworkConfig(**net_cfg)
        module = ForecastModule(asdict(model.config_), {})
        module.net.load_state_dict(torch.load(path / "weights.pt", weights_only=True))
        model.network_ = module.net.eval()
        tensors = torch.load(path / "history.pt", weights_only=True)
        model.data_ = _history_from(config, tensors, model.lookback)
        model.freq_ = model.data_.freq
        if config.get("loss_history"):
            model.loss_history_ = config["loss_history"]
        if "conformal_errors" in tensors:
            model.conformal_errors_ = tensors["conformal_errors"].numpy()
        if (path / "stream.pt").exists():
            model.stream_state_ = torch.load(path / "stream.pt", weights_only=True)
        return model


def _append(data: SeriesData, point: torch.Tensor, future_block: torch.Tensor) -> SeriesData:
    """The panel with ``point`` (n, H) appended to each series (for recursive rollout)."""
    n, H = point.shape
    lengths = data.lengths
    new_lengths = lengths + H
    indptr = np.concatenate([[0], np.cumsum(new_lengths)]).astype(np.int64)
    old_rows = np.concatenate([np.arange(a, a + m) for a, m in zip(indptr[:-1], lengths,
                                                                   strict=True)])
    new_rows = np.concatenate([np.arange(a + m, a + m + H) for a, m in zip(indptr[:-1], lengths,
                                                                           strict=True)])

    def grow(old: torch.Tensor, added: torch.Tensor) -> torch.Tensor:
        out = old.new_zeros((indptr[-1], *old.shape[1:]))
        out[torch.from_numpy(old_rows)] = old
        out[torch.from_numpy(new_rows)] = added.reshape(n * H, *old.shape[1:]).to(old.dtype)
        return out

    times = np.zeros(indptr[-1], dtype=data.times.dtype)
    times[old_rows] = data.times
    last = pl.Series(data.times[data.indptr[1:] - 1])
    times[new_rows] = data.freq.future(last, H).to_numpy()
    return replace(data, indptr=indptr, times=times,
                   target=grow(data.target, point),
                   observed=grow(data.observed, torch.ones(n, H, dtype=torch.bool)),
                   past=grow(data.past, torch.zeros(n, H, data.past.shape[1])),
                   future=grow(data.future, future_block))


def _history_from(config: dict, tensors: dict, lookback: int) -> SeriesData:
    """Rebuild the saved last ``lookback`` steps of each series as a SeriesData."""
    lengths = tensors["lengths"].numpy()
    kept = np.minimum(lengths, lookback)
    n = len(lengths)
    mask = tensors["history_mask"]
    start = lookback - kept
    rows = torch.cat([torch.arange(s, lookback) + j * lookback for j, s in enumerate(start)])
    flat = {k: tensors[k].reshape(n * lookback, *tensors[k].shape[2:])[rows]
            for k in ("history", "past")}
    future = tensors["future"][:, :lookback].reshape(n * lookback, -1)[rows]
    observed = mask.reshape(-1)[rows]
    times = tensors["times"].numpy()
    all_ptr = np.concatenate([[0], np.cumsum(lengths)])
    keep_rows = np.concatenate([np.arange(e - k, e) for e, k in zip(all_ptr[1:], kept,
                                                                    strict=True)])
    times = times[keep_rows]
    if config["time_dtype"].startswith("datetime64"):
        times = times.astype("datetime64[us]")
    freq = None if config["freq"] is None else Frequency(*config["freq"])
    cols = config["columns"]
    columns = Columns(cols["id_col"], cols["time_col"], cols["target_col"],
                      tuple(cols["future"]), tuple(cols["past"]), tuple(cols["static"]))
    return SeriesData(
        ids=np.array(config["ids"], dtype=object), indptr=np.concatenate([[0], np.cumsum(kept)]),
        times=times, target=flat["history"], observed=observed, past=flat["past"],
        future=future, static=tensors["static"], freq=freq, columns=columns,
        kind=config["kind"], static_categories=config["static_categories"],
        calendar=tuple(config["calendar"]))


def _as_pandas(df):
    frame, _ = to_polars(df)
    return frame.to_pandas()


def _jsonable(value):
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
