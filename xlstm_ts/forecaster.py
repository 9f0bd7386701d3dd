"""XLSTMForecaster: a scikit-learn-style estimator for long dataframes.

fit = validate the frame -> split the last ``val_size`` steps of each series for
validation -> train the network with Lightning (early stopping, best-checkpoint
restore; each epoch scores at most 8,192 validation windows, evenly spread) -> keep
the last ``lookback`` steps of every series for forecasting.
predict returns a frame of the caller's library with ``[id_col, time_col,
"y_pred"]`` and ``y_pred_q{q}`` per quantile level for probabilistic heads.

This file is the estimator's contract (parameters, fit, predict); the rollout
lives in :mod:`xlstm_ts.inference`, streaming in :mod:`xlstm_ts.streaming`,
backtests and calibration in :mod:`xlstm_ts.evaluation`, the saved format in
:mod:`xlstm_ts.persistence`. Tracking wraps a fit from outside
(:func:`xlstm_ts.tracking.tracked_fit`).
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import warnings
from dataclasses import asdict

import numpy as np
import polars as pl
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from . import inference, persistence, pretrained, streaming
from ._checks import (
    BOOL,
    Integer,
    NoneOr,
    Real,
    SequenceOf,
    check_params,
    check_positive_int,
)
from .calibration import BandCalibration, last_spread
from .data import (
    SeriesData,
    check_compatible,
    check_min_length,
    future_covariates,
    prepare_series,
    time_split_regions,
)
from .data.append import bridge_gaps, drop_bridges, starts_after_gap
from .data.channels import add_channel_columns, channel_names
from .data.frames import PRED_COL, from_polars, quantile_column
from .data.lazy import is_lazy_source, scan_source, stage_panel
from .evaluation import backtesting
from .models import NetworkConfig, check_network_shape
from .models.tirex2 import load_checkpoint
from .parameters import FORECASTER_CONSTRAINTS, NETWORK_PARAMS, PRETRAINED_NETWORKS
from .presets import (
    Resolved,
    default_val_size,
    pretrained_lookback,
    resolve,
)

__all__ = ["PRED_COL", "UndercoverageWarning", "XLSTMForecaster", "quantile_column"]


class UndercoverageWarning(UserWarning):
    """Intervals served from a head whose bands covered the validation windows less
    than their nominal level: they are too narrow."""

_LEVELS = SequenceOf(Real(0.0, 100.0, open="both"))  # predict(level=...): percents


def _float64(values) -> np.ndarray:
    """A forecast tensor as a flat float64 array (through numpy: cheaper than torch's
    cast on the few values of a streamed predict)."""
    return values.numpy().astype(np.float64).ravel()


class XLSTMForecaster(BaseEstimator):
    """Global xLSTM forecaster for many series at once.

    Pass ``horizon``; the rest has defaults that fit the data: the lookback and the
    patching follow the horizon, the frequency and the series' lengths (finer patches
    from 100,000 training windows on; the rule is in :mod:`xlstm_ts.presets`; short
    series are padded, not rejected), the forecast is a
    least-squares linear map of the window plus the xLSTM's correction (patched
    encoder, d_model 64, blocks [mLSTM, sLSTM]), trained at most 20 epochs with early
    stopping on the validation split (``val_size``: the last tenth of each series, one
    horizon on short data and on panels of 100+ series). Measurements:
    ``benchmarks/results/``.

    Args (all keyword-only, stored as given):
        lookback, horizon: history length fed to the network (None: by the rule),
            steps forecast at once.
        network: ``"patch"``, ``"xlstmtime"`` (causal: carries a streaming state),
            ``"mixer"`` (the series share their timestamps and are forecast jointly, each
            window seeing every series' values; :class:`xlstm_ts.models.MixerXLSTM`; a
            mixer forecasts exactly the series it was fitted on) or ``"tirex2"`` (a
            pretrained TiRex-2 network read from ``pretrained``: :meth:`predict` works
            without ``fit``, zero-shot; ``fit`` fine-tunes it).
        pretrained: with ``network="tirex2"``, the checkpoint: a folder holding
            ``config.json`` and ``model.safetensors``, the name of a checkpoint shipped
            in the package, or a Hugging Face name such as ``"NX-AI/TiRex-2"`` (needs
            ``pip install "xlstm-ts[pretrained]"`` and a network; see
            ``docs/pretrained.md``).
        finetune: with ``network="tirex2"``, what ``fit`` trains: ``"all"`` weights,
            ``"head"`` (the output head and the last block), or None (``fit`` only keeps
            the panel: zero-shot forecasts, e.g. a backtest without training). The
            pretrained weights are kept when fine-tuning does not lower the validation
            loss (``finetuned_`` says which). ``learning_rate`` None: 1e-4; the context
            of a training window is ``lookback``, None: a quarter of the network's
            context at most, four horizons at least (whole patches).
        d_model, num_blocks, slstm_at, num_heads, dropout: the xLSTM stack. Dropout 0
            by default: 0.1 validated worse on M4 Hourly and on the promotion panel.
        linear_path: forecast = a linear map of the normalised lookback + the xLSTM's
            correction; the map starts at its ridge solution and the correction at zero.
            With validation, the fitted network forecasts the blend of its trained
            weights and that start (a share 0, 1/4, ..., 1 of the trained) that scores
            best there (:mod:`xlstm_ts.training.blend`); the shares chosen, one per
            member, are ``correction_share_`` (0: the start was kept). The start's
            share is then solved again with the validation windows added, except on
            short data (:func:`xlstm_ts.presets.mostly_padded`).
        n_models: ensemble size: members trained with seeds ``random_state + k``, point
            forecasts their median (see :class:`xlstm_ts.models.Ensemble`). None: 5
            when the median series is shorter than the lookback plus the horizon and
            validation steps (short data, mostly padded windows: cheap fits whose
            result varies most with the seed), 3 on panels of at least 100 longer
            series (about 3x the fit time), else 1
            (:func:`xlstm_ts.presets.default_n_models`); the size used is ``n_models_``.
        patch_len, patch_stride: patching of the lookback (``network="patch"``; None:
            by the rule).
        season_length: the seasonal period in steps (24 for hourly data with a daily
            cycle); the linear start offers the seasonal naive forecast of each period
            as a candidate on validation. None: the usual cycles of the frequency
            (:func:`xlstm_ts.presets.seasonal_periods`; none for an integer index).
        head: ``"point"``, ``"quantile"``, ``"normal"`` or ``"studentt"``.
        loss: point-head loss, ``"mae"``, ``"mse"`` or ``"huber"``. MAE by default: its
            gradient is bounded, so the few windows whose normalised targets are huge
            (a short or flat history) cannot steer training. On validation splits it
            was level with MSE on ETTh1 (where the linear start is kept either way),
            better on M4 Hourly and about level on M3 Yearly; the blend with the start
            is still chosen on squared error (``benchmarks/results/accuracy-ett.md``).
        quantiles: levels returned by probabilistic heads (and trained by ``"quantile"``).
        nonnegative: floor every forecast (point, quantiles, bands) at 0. None (default):
            when every target value the fit saw is at least 0 (sales, counts, load), as
            ``nonnegative_`` records; a forecast below 0 of such data is never closer to
            a nonnegative actual than 0 is.
        intervals: where ``predict(level=...)`` bands come from. ``"calibrated"``
            (default): the fit measures the point forecast's errors on its validation
            windows, in units of each window's spread, and serves their quantiles as
            bands for any head (:mod:`xlstm_ts.calibration`; ``interval_calibration_``;
            ``network="tirex2"``: the forecasts of each series' last ``val_size`` steps
            from the history before them, fine-tuned or not; a zero-shot ``predict``
            without ``fit`` serves the network's quantiles);
            without validation windows the head's own quantiles serve, as with
            ``"head"``, which always serves them (and warns when they covered the
            validation windows more than 5 points below nominal).
            :meth:`conformalize` calibrates again on later data either way.
        learning_rate: AdamW's peak rate. None: 3e-3, or 1e-2 when the fit has
            covariates (future-known, past, calendar or static), whose effects only the
            xLSTM learns and which 3e-3 learned too slowly; chosen on validation splits
            (:data:`xlstm_ts.presets.LEARNING_RATE`). The rate used is ``learning_rate_``.
        weight_decay, schedule, warmup: AdamW with warm-up + cosine or one-cycle.
        batch_size, max_epochs, batches_per_epoch: training length; an epoch draws
            ``batches_per_epoch`` batches, or one pass's worth when there are fewer windows.
            ``batches_per_epoch=None`` (default): 50, or 100 on panels of at least 100,000
            training windows, which were still improving after 20 epochs of 50
            (:func:`xlstm_ts.presets.default_batches_per_epoch`). The value
            used is ``batches_per_epoch_``.
        val_size: validation steps at the end of each series; 0 disables validation
            and early stopping. None (default): a tenth of the median series (at least
            ``horizon``, and leaving the median series a full training window); one
            ``horizon`` on short data and on panels of 100 or more series
            (:func:`xlstm_ts.presets.default_val_size`). One horizon of a few long
            series is a handful of windows, too few to choose on. The value used is
            ``val_size_``.
        patience: early-stopping patience in epochs.
        gradient_clip: max gradient norm (None: off).
        ema_decay: ``"auto"`` (default): the network that validation scores, early
            stopping watches and the fit keeps is an exponential moving average of the
            trained weights, updated every step, over about the last two epochs: decay
            ``1 - 1 / (2 * steps per epoch)``, 0.99 at 50 batches per epoch, 0.995 at 100
            (:func:`xlstm_ts.presets.ema_decay_for`). A number in [0, 1) sets the
            decay; None keeps the raw weights of the best epoch (chosen on
            validation splits: ``docs/decisions.md``).
        id_col, time_col, target_col, future_covariates, past_covariates, calendar,
        fill_missing, target_missing: frame handling, see :func:`xlstm_ts.data.prepare_series`
            (with ``fill_missing`` set, a missing covariate value carries its series'
            last known value forward).
            Covariates may be in any units (each column is standardised with the
            fitted data's mean and std); future-known ones act on the forecast step by
            step (their values at steps j-1..j+1 move step j), on top of the linear path.
        accelerator, devices, precision: passed to Lightning (``"auto"`` uses a GPU
            when present).
        strategy, num_nodes: data-parallel training, passed to Lightning (e.g.
            ``strategy="ddp", devices=4, num_nodes=2``; see ``docs/scale-out.md``).
        backend: the cells' kernels: ``"auto"`` (fused Triton kernels on a CUDA device
            when Triton is installed, PyTorch otherwise), ``"triton"`` or ``"torch"``.
        progress_bar: progress bars (training and long predictions); ``None`` shows them
            only when stderr is a terminal, so piped output and cron logs stay clean.
            Per-epoch losses go to the ``xlstm_ts`` logger at INFO either way.
        logger, callbacks: any Lightning logger and callbacks.
        checkpoint_dir: where checkpoints go (a temporary directory when None; set it
            to resume a killed fit with ``fit(..., resume=True)``).
        random_state: seed making CPU runs reproducible.
    """

    def __init__(self, *, lookback: int | None = None, horizon: int = 24, network: str = "patch",
                 d_model: int = 64, num_blocks: int = 2, slstm_at: tuple = (1,),
                 num_heads: int = 4, dropout: float = 0.0, linear_path: bool = True,
                 n_models: int | None = None,
                 patch_len: int | None = None,
                 patch_stride: int | None = None, season_length: int | None = None,
                 head: str = "point", loss: str = "mae",
                 quantiles: tuple = (0.1, 0.5, 0.9), nonnegative: bool | None = None,
                 intervals: str = "calibrated",
                 learning_rate: float | None = None,
                 weight_decay: float = 1e-2, schedule: str = "cosine", warmup: float = 0.05,
                 batch_size: int = 64, max_epochs: int = 20, batches_per_epoch: int | None = None,
                 val_size: int | None = None, patience: int = 5,
                 gradient_clip: float | None = 1.0, ema_decay: float | str | None = "auto",
                 id_col: str = "unique_id",
                 time_col: str = "ds", target_col: str = "y", future_covariates: tuple = (),
                 past_covariates: tuple = (), calendar: tuple = (),
                 fill_missing: str | None = None, target_missing: str = "raise",
                 accelerator: str = "auto", devices="auto", precision="32-true",
                 strategy: str = "auto", num_nodes: int = 1, backend: str = "auto",
                 progress_bar: bool | None = None, logger=False, callbacks=None,
                 checkpoint_dir: str | None = None, random_state: int | None = None,
                 pretrained: str | None = None, finetune: str | None = "all"):
        self.lookback = lookback
        self.horizon = horizon
        self.network = network
        self.d_model = d_model
        self.num_blocks = num_blocks
        self.slstm_at = slstm_at
        self.num_heads = num_heads
        self.dropout = dropout
        self.linear_path = linear_path
        self.n_models = n_models
        self.patch_len = patch_len
        self.patch_stride = patch_stride
        self.season_length = season_length
        self.head = head
        self.loss = loss
        self.quantiles = quantiles
        self.nonnegative = nonnegative
        self.intervals = intervals
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
        self.ema_decay = ema_decay
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
        self.pretrained = pretrained
        self.finetune = finetune


    _parameter_constraints = FORECASTER_CONSTRAINTS

    def _check_params(self) -> None:
        check_params(self._parameter_constraints, self.get_params())
        if (self.network in PRETRAINED_NETWORKS) != (self.pretrained is not None):
            raise ValueError(
                f"pretrained= goes with network='tirex2' (a checkpoint folder or name) and "
                f"only with it. Got network={self.network!r}, pretrained={self.pretrained!r}.")
        check_network_shape(self.network, self.lookback or 1 << 30, self.patch_len or 1,
                            self.num_blocks, self.slstm_at, self.d_model, self.num_heads)

    def _prepare(self, df, static_df=None, static_categories=None, freq=None) -> SeriesData:
        past = tuple(self.past_covariates)
        if self.network == "mixer":  # every channel's value at each time, as past inputs
            fitted = self.data_.ids if hasattr(self, "network_") else None
            df, channels = add_channel_columns(df, self.id_col, self.time_col,
                                               self.target_col, fitted)
            past += tuple(channel_names(len(channels)))
        return prepare_series(
            df, id_col=self.id_col, time_col=self.time_col, target_col=self.target_col,
            future_covariates=self.future_covariates, past_covariates=past,
            static_df=static_df, calendar=self.calendar, fill_missing=self.fill_missing,
            target_missing=self.target_missing, static_categories=static_categories, freq=freq)

    def _prepare_new(self, df, static_df) -> SeriesData:
        """A frame given after fit: checked against the fitted panel, on its frequency."""
        n_static = 0 if self.config_ is None else self.config_.n_static  # None: tirex2
        if static_df is not None and not n_static:
            raise ValueError("static_df was given but the model was fitted without static "
                             "features; leave static_df out or refit with it.")
        data = self._prepare(df, static_df, self.data_.static_categories, self.data_.freq)
        check_compatible(self.data_, data, allow_new_ids=True)
        if n_static and data.static.shape[1] != n_static:
            raise ValueError(f"The model was fitted with {n_static} static "
                             f"features: pass static_df with a row for every series of df.")
        return data

    def check(self, df, static_df=None) -> SeriesData:
        """Check the parameters and the frame ``df`` as :meth:`fit` would, without training:
        raises the error fit would raise, else returns the validated panel."""
        self._check_params()
        data = self._prepare(df, static_df)
        if self.network in PRETRAINED_NETWORKS:
            return data
        return check_min_length(data, self._resolve(data).window.min_length)

    def _resolve(self, data: SeriesData, val_size: int | None = None) -> Resolved:
        """The data-fitted defaults of a fit on ``data`` (:func:`xlstm_ts.presets.resolve`):
        given values kept, None ones by the rules; ``val_size`` overrides the parameter."""
        return resolve(
            lookback=self.lookback, patch_len=self.patch_len, patch_stride=self.patch_stride,
            horizon=self.horizon, val_size=self.val_size if val_size is None else val_size,
            n_models=self.n_models, learning_rate=self.learning_rate,
            season_length=self.season_length, freq=data.freq, lengths=data.lengths,
            n_covariates=data.past.shape[1] + data.future.shape[1] + data.static.shape[1])

    def _val_size(self, data: SeriesData, val_size: int | None = None) -> int:
        """Validation steps per series of a pretrained network's fit: the argument, else
        ``val_size``, else the rule of :func:`xlstm_ts.presets.default_val_size`."""
        val = self.val_size if val_size is None else val_size
        if val is not None:
            return val
        return default_val_size(self.lookback, horizon=self.horizon, freq=data.freq,
                                lengths=data.lengths)

    def _progress(self) -> bool:
        """Whether to draw progress bars: as set, or when stderr is a terminal."""
        if self.progress_bar is None:
            return sys.stderr.isatty()
        return bool(self.progress_bar)

    def _check_fitted(self) -> None:
        if not hasattr(self, "network_"):
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet. "
                               "Call 'fit' with appropriate arguments before using this "
                               "estimator.")

    # ------------------------------------------------------------------ fit

    def fit(self, df, static_df=None, val_size: int | None = None, *, resume: bool = False,
            ckpt_path: str | None = None, callbacks=()) -> XLSTMForecaster:
        """Train on the long frame ``df`` (see the class docstring for the columns).

        ``resume=True`` continues from ``checkpoint_dir/last.ckpt`` (or ``ckpt_path``)
        and ends where an uninterrupted fit would. ``callbacks`` are Lightning callbacks
        for this fit only (added to the ``callbacks`` parameter); to record the fit in
        MLflow use :func:`xlstm_ts.tracking.tracked_fit`.
        """
        self._check_params()
        if val_size is not None:
            NoneOr(Integer(0))("val_size", val_size)
        if is_lazy_source(df):
            if self.network in PRETRAINED_NETWORKS:
                return self._fit_staged(df, static_df, val_size, callbacks)
            df = scan_source(df)  # read whole: the window networks train in memory
        data = self._prepare(df, static_df)
        if self.network in PRETRAINED_NETWORKS:
            return self._fit_pretrained(data, self._val_size(data, val_size), static_df,
                                        callbacks)
        resolved = self._resolve(data, val_size)
        val, shape, learning_rate = resolved.val_size, resolved.window, resolved.learning_rate
        data = check_min_length(data, shape.min_length)
        regions = time_split_regions(data, val, 0)
        config = NetworkConfig(
            **{name: getattr(self, name) for name in NETWORK_PARAMS if name not in (
                "lookback", "patch_len", "patch_stride", "n_models")},
            n_models=resolved.n_models,
            lookback=shape.lookback, patch_len=shape.patch_len, patch_stride=shape.patch_stride,
            n_past=data.past.shape[1], n_future=data.future.shape[1],
            n_channels=data.n_series if self.network == "mixer" else 0,
            n_static=data.static.shape[1])
        config = NetworkConfig.from_dict(asdict(config))  # tuples, whatever was passed
        from .training import train_network  # Lightning loads with the first fit, not import

        trained = train_network(
            config, {"learning_rate": learning_rate,
                     "weight_decay": float(self.weight_decay), "schedule": self.schedule,
                     "warmup": float(self.warmup)}, data, regions,
            has_validation=bool(val), batch_size=self.batch_size,
            batches_per_epoch=self.batches_per_epoch,
            min_history=shape.min_history, max_epochs=self.max_epochs,
            refit_start=not resolved.short, seasons=resolved.seasons,
            seed=0 if self.random_state is None else self.random_state,
            checkpoint_dir=self.checkpoint_dir, resume=resume, ckpt_path=ckpt_path,
            callbacks=[*(self.callbacks or ()), *callbacks], patience=self.patience,
            gradient_clip=self.gradient_clip, ema_decay=self.ema_decay,
            accelerator=self.accelerator,
            devices=self.devices, precision=self.precision, strategy=self.strategy,
            num_nodes=self.num_nodes, progress_bar=self._progress(), logger=self.logger)
        self.network_ = trained.network
        for carried in ("stream_state_", "_streamed"):  # a refit forgets the carried state
            self.__dict__.pop(carried, None)
        self.config_, self.data_, self.freq_ = config, data, data.freq
        self.epochs_trained_ = trained.epochs[0]
        self.learning_rate_ = learning_rate
        self.batches_per_epoch_ = trained.batches_per_epoch
        self.n_models_ = config.n_models
        self.val_size_ = val
        self.global_rank_ = trained.global_rank
        self.history_ = trained.metrics[0]
        self.loss_history_ = trained.histories[0]
        self.member_loss_histories_ = trained.histories
        self.correction_share_ = trained.correction_shares
        self._start_network = trained.start  # the linear start alone (benchmarks); not saved
        self.lookback_ = shape.lookback
        self.nonnegative_ = self._nonnegative(data)
        self.interval_coverage_ = {}  # the head's central bands on validation windows
        if self.head != "point" and val:
            self.interval_coverage_ = inference.band_coverage(
                self.network_, data, shape.lookback, self.horizon, regions["val"],
                config.quantiles)
        self.__dict__.pop("interval_calibration_", None)
        if self.intervals == "calibrated" and val:
            errors = inference.held_out_errors(self.network_, data, shape.lookback,
                                               self.horizon, regions["val"], shape.min_history)
            if np.isfinite(errors).any():
                self.interval_calibration_ = BandCalibration.from_errors(errors, "validation")
        return self

    # ------------------------------------------------------------------ predict

    def predict(self, df=None, future_df=None, horizon: int | None = None, static_df=None,
                level: tuple[float, ...] = ()):
        """Forecast ``horizon`` steps (default: the trained horizon) after the end of each
        series: of the training data, or of the history ``df`` (same or new series).

        Longer horizons than trained are rolled out recursively, feeding point forecasts
        back as history. ``future_df`` supplies future-known covariates. ``level`` (e.g.
        ``(80, 95)``) adds the band ``y_pred_lo{level}`` / ``y_pred_hi{level}``:
        calibrated on the fit's validation windows (``intervals="calibrated"``) or by
        :meth:`conformalize`, any level; otherwise the head's own quantiles where they
        hold both ends (``(0.1, 0.9)`` for 80).
        """
        if self.network in PRETRAINED_NETWORKS:
            return self._predict_pretrained(df, future_df, horizon, static_df, level)
        self._check_fitted()
        _LEVELS("level", level)
        bands = self._band_quantiles(level)
        horizon = self.horizon if horizon is None else check_positive_int("horizon", horizon)
        data = self.data_ if df is None else self._prepare_new(df, static_df)
        if self.config_.n_past and horizon > self.horizon:
            raise ValueError(f"horizon {horizon} exceeds the trained horizon {self.horizon} and "
                             f"past-only covariates cannot be rolled forward. Refit with "
                             f"horizon={horizon} or without past_covariates.")
        state = getattr(self, "stream_state_", None) if df is None else None
        quantiles = None if self.head == "point" else self.config_.quantiles
        streamed = getattr(self, "_streamed", None)  # made by update(compile=True)
        made = streamed and streamed.for_predict(state, horizon, quantiles)
        if made:
            point, quant = made
        else:
            ahead = future_covariates(self.data_, data, future_df, horizon)
            point, quant = inference.rollout(self.network_, data, self.config_.lookback,
                                             horizon, self.horizon, ahead, quantiles, state,
                                             self._progress())
        columns = {self.id_col: np.repeat(data.ids, horizon),
                   self.time_col: data.future_times(horizon),
                   PRED_COL: _float64(point)}
        if quant is not None:
            for j, q in enumerate(self.config_.quantiles):
                columns[quantile_column(q)] = _float64(quant[..., j])
        self._warn_undercovered(level if bands is not None else ())
        self._add_bands(columns, level, horizon, data, lambda lv: (
            columns[quantile_column(q)] for q in bands[lv]))
        self._floor(columns, getattr(self, "nonnegative_", None)
                    if hasattr(self, "network_") else self._nonnegative(data))
        inference.check_finite(columns[PRED_COL], data, horizon)
        # a frame of Series: ~2x cheaper than from a dict of arrays (streamed predicts)
        return from_polars(pl.DataFrame([v.alias(k) if isinstance(v, pl.Series)
                                         else pl.Series(k, v) for k, v in columns.items()]),
                           data.kind)

    # ------------------------------------------------------------------ pretrained

    @property
    def model_id_(self) -> str:
        """A stable id of the fitted weights (``xlstm-ts-`` and 12 hex digits of their
        SHA-256): the same for every copy of the model wherever it is saved, new after
        a refit; carried state and data do not change it."""
        self._check_fitted()
        digest = hashlib.sha256()
        for name, tensor in sorted(self.network_.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1)
                          .view(torch.uint8).numpy().tobytes())
        return f"xlstm-ts-{digest.hexdigest()[:12]}"

    @property
    def best_val_loss_(self) -> float | None:
        """The lowest validation loss of the fit (the weights early stopping kept), None
        where the fit had no validation (or trained nothing)."""
        self._check_fitted()
        losses = [v for v in getattr(self, "loss_history_", {}).get("val_loss", [])
                  if v is not None]
        return min(losses) if losses else None

    @property
    def context_steps_(self) -> int:
        """Steps of history a forecast reads per series (the lookback, or a pretrained
        network's context)."""
        self._check_fitted()
        return self.network_.config.context_len if self.config_ is None \
            else self.config_.lookback

    def _pretrained_network(self):
        """The network of ``pretrained``, read once per checkpoint."""
        cached = self.__dict__.get("_pretrained_cache")
        if cached is None or cached[0] != self.pretrained:
            cached = (self.pretrained, load_checkpoint(self.pretrained))
            self.__dict__["_pretrained_cache"] = cached
        return cached[1]

    def _fit_staged(self, source, static_df, val_size: int | None, callbacks):
        """:meth:`fit` of ``network="tirex2"`` on a lazy source: staged a batch of series
        at a time (:mod:`xlstm_ts.data.lazy`), fine-tuned shard by shard; memory holds
        one batch of series and each series' last ``context_len`` steps."""
        if static_df is not None or self.past_covariates or self.future_covariates \
                or self.calendar:
            raise ValueError("fit on a LazyFrame or parquet files trains on the target "
                             "alone: leave static_df, past_covariates, future_covariates "
                             "and calendar out, or pass a collected frame.")
        cfg = self._pretrained_network().config
        with tempfile.TemporaryDirectory(prefix="xlstm_ts_panel_") as folder:
            staged = stage_panel(source, folder, id_col=self.id_col, time_col=self.time_col,
                                 target_col=self.target_col, keep=cfg.context_len,
                                 fill_missing=self.fill_missing,
                                 target_missing=self.target_missing)
            val = val_size if val_size is not None else self.val_size
            if val is None:
                val = default_val_size(self.lookback, horizon=self.horizon,
                                       freq=staged.tail.freq, lengths=staged.lengths)
            return self._fit_pretrained(staged.tail, val, None, callbacks, staged=staged)

    def _fit_pretrained(self, data: SeriesData, val: int, static_df, callbacks, staged=None):
        """Keep the panel and, with ``finetune``, fine-tune the pretrained network (on
        ``staged``, the whole panel on disk, where given; ``data`` then holds each
        series' last ``context_len`` steps)."""
        if static_df is not None:
            raise ValueError("network='tirex2' uses no static features; leave static_df out.")
        net = self._pretrained_network()
        cfg = net.config
        self.finetuned_, self.epochs_trained_ = False, 0
        self.loss_history_ = {"epoch": [], "train_loss": [], "val_loss": []}
        if self.finetune is not None:
            horizon = min(self.horizon, cfg.future_len)
            from .training.pretrained import fine_tune, fine_tune_staged

            options = dict(
                lookback=self.lookback or pretrained_lookback(cfg.context_len, cfg.patch_size,
                                                              horizon),
                horizon=horizon, finetune=self.finetune,
                learning_rate=1e-4 if self.learning_rate is None else float(self.learning_rate),
                weight_decay=float(self.weight_decay), batch_size=self.batch_size,
                batches_per_epoch=self.batches_per_epoch, max_epochs=self.max_epochs,
                seed=0 if self.random_state is None else self.random_state,
                checkpoint_dir=self.checkpoint_dir,
                callbacks=[*(self.callbacks or ()), *callbacks], patience=self.patience,
                gradient_clip=self.gradient_clip, accelerator=self.accelerator,
                devices=self.devices, precision=self.precision, strategy=self.strategy,
                num_nodes=self.num_nodes, progress_bar=self._progress(), logger=self.logger)
            if staged is not None:
                tuned = fine_tune_staged(net, staged, val, **options)
            else:
                tuned = fine_tune(net, data, time_split_regions(data, val, 0),
                                  has_validation=bool(val), **options)
            net = tuned.network
            self.finetuned_ = not tuned.kept_pretrained
            self.epochs_trained_, self.loss_history_ = tuned.epochs, tuned.history
        for carried in ("stream_state_", "_streamed", "interval_calibration_"):
            self.__dict__.pop(carried, None)
        self.network_, self.data_, self.freq_, self.config_ = net, data, data.freq, None
        self.val_size_, self.n_models_ = val, 1
        self.lookback_ = net.config.context_len
        self.nonnegative_ = self._nonnegative(data)
        if self.intervals == "calibrated" and val:
            errors = pretrained.held_out_errors(net, data, val, self.horizon)
            if np.isfinite(errors).any():
                self.interval_calibration_ = BandCalibration.from_errors(errors, "validation")
        return self

    def _predict_pretrained(self, df, future_df, horizon, static_df, level):
        """:meth:`predict` of ``network="tirex2"``: from the fitted panel, or zero-shot
        from ``df`` without a fit."""
        _LEVELS("level", level)
        horizon = self.horizon if horizon is None else check_positive_int("horizon", horizon)
        if static_df is not None:
            raise ValueError("network='tirex2' uses no static features; leave static_df out.")
        if hasattr(self, "network_"):
            net, fitted = self.network_, self.data_
            data = fitted if df is None else self._prepare_new(df, None)
        elif df is None:
            raise NotFittedError("predict() without df forecasts the panel given to fit; "
                                 "call fit(df) first, or predict(df) for zero-shot forecasts.")
        else:
            self._check_params()
            net, data = self._pretrained_network(), self._prepare(df)
            fitted = data
        ahead = future_covariates(fitted, data, future_df, horizon)
        bands = {} if hasattr(self, "interval_calibration_") else {  # else calibrated
            lv: ((1 - lv / 100) / 2, (1 + lv / 100) / 2) for lv in level}
        wanted = tuple(dict.fromkeys([*self.quantiles, *(q for b in bands.values() for q in b)]))
        stream = getattr(self, "stream_state_", None) if df is None else None
        point, quant = pretrained.forecast_panel(net, data, horizon, ahead, wanted, stream)
        columns = {self.id_col: np.repeat(data.ids, horizon),
                   self.time_col: data.future_times(horizon), PRED_COL: _float64(point)}
        for j, q in enumerate(self.quantiles):
            columns[quantile_column(q)] = _float64(quant[..., j])
        self._add_bands(columns, level, horizon, data, lambda lv: (
            _float64(quant[..., wanted.index(q)]) for q in bands[lv]))
        self._floor(columns, getattr(self, "nonnegative_", None)
                    if hasattr(self, "network_") else self._nonnegative(data))
        inference.check_finite(columns[PRED_COL], data, horizon)
        return from_polars(pl.DataFrame([pl.Series(k, v) for k, v in columns.items()]),
                           data.kind)

    # ------------------------------------------------------------------ streaming

    def _add_bands(self, columns: dict, level, horizon: int, data: SeriesData,
                   head_band) -> None:
        """``y_pred_lo{level}`` / ``y_pred_hi{level}`` into ``columns``: calibrated
        around the point forecast where ``interval_calibration_`` is set (by the fit's
        validation windows or :meth:`conformalize`); else the network's own band,
        ``head_band(level)`` -> (low, high) arrays."""
        calibration = getattr(self, "interval_calibration_", None)
        scale = (last_spread(data, self.context_steps_)
                 if calibration is not None and level else None)
        for lv in level:
            if calibration is not None:
                low, high = calibration.band(columns[PRED_COL].reshape(data.n_series, horizon),
                                             scale, float(lv))
                low, high = low.reshape(-1), high.reshape(-1)
            else:
                low, high = head_band(lv)
            columns[f"{PRED_COL}_lo{lv:g}"], columns[f"{PRED_COL}_hi{lv:g}"] = low, high

    def _nonnegative(self, data: SeriesData) -> bool:
        """``nonnegative`` resolved on ``data``: as given, else whether every observed
        target is at least 0."""
        if self.nonnegative is not None:
            return bool(self.nonnegative)
        observed = data.target[data.observed]
        return bool(len(observed)) and bool((observed >= 0).all())

    def _floor(self, columns: dict, nonnegative: bool | None) -> None:
        """Floor the forecast columns (point, quantiles, bands) at 0 where
        ``nonnegative``."""
        if not nonnegative:
            return
        for name, values in columns.items():
            if name.startswith(PRED_COL) and isinstance(values, np.ndarray) \
                    and values.dtype.kind == "f":
                np.maximum(values, 0.0, out=values)

    def _warn_undercovered(self, level) -> None:
        """Warn where a band from the head's quantiles covered its validation windows
        more than 5 points below its nominal level (``interval_coverage_``)."""
        measured = getattr(self, "interval_coverage_", {})
        for lv in level:
            covered = measured.get(round(float(lv), 6))
            if covered is not None and covered < lv / 100 - 0.05:
                warnings.warn(
                    f"The {lv:g}% band from the {self.head} head covered {covered:.1%} of "
                    f"the validation windows' actuals (nominal {lv:g}%): it is too narrow. "
                    f"Call conformalize(df) on data after the training span for calibrated "
                    f"bands, or train longer.", UndercoverageWarning, stacklevel=3)

    def _band_quantiles(self, level) -> dict | None:
        """None for calibrated bands; else each level's (low, high) head quantiles."""
        if not level or hasattr(self, "interval_calibration_"):
            return None
        held = [] if self.head == "point" else list(self.config_.quantiles)
        bands = {}
        for lv in level:
            ends = [next((q for q in held if abs(q - target) < 1e-9), None)
                    for target in ((1 - lv / 100) / 2, (1 + lv / 100) / 2)]
            if None in ends:
                raise ValueError(
                    f"level={lv:g} needs the quantiles {(1 - lv / 100) / 2:g} and "
                    f"{(1 + lv / 100) / 2:g}, which the {self.head} head does not return "
                    f"(quantiles={tuple(held)}): call conformalize(df) for conformal "
                    f"bands, or fit with those quantiles.")
            bands[lv] = tuple(ends)
        return bands

    def update(self, df, *, skip_seen: bool = False, compile: bool = False) -> XLSTMForecaster:
        """Absorb new observations of fitted series; :meth:`predict` (without ``df``) then
        forecasts from their new end.

        ``df`` holds, per series, the steps right after those already absorbed (the
        same columns as in fit). Streaming networks (``network="xlstmtime"``) advance a
        carried state over the new steps only, O(new steps); others roll their window
        forward and re-encode it (see :mod:`xlstm_ts.streaming` for the drift of a
        carried state and :meth:`reset_state`). ``skip_seen=True`` leaves out (and
        logs) rows at or before a series' last absorbed time, so a re-run is harmless.
        ``compile=True`` advances the carried state through ``torch.compile`` (networks
        without one ignore it), and where every series steps at once also makes the
        forecast that :meth:`predict` then returns: the first call compiles (seconds),
        later ones are faster (``benchmarks/streaming.py``); the eager step is used,
        with a warning, where compiling fails. Results agree to float32 round-off.

        ``network="tirex2"`` streams too (``compile`` is ignored): the first update
        anchors each series' last ``context_len`` steps (their scaling statistics are
        kept), later steps advance the recurrent states, a fixed cost per completed
        patch (:mod:`xlstm_ts.models.tirex2.stream`). That needs every fitted series to
        get the same number of new steps and no covariate known over the horizon
        (those run backward in time); otherwise the new rows join the window and
        forecasts re-encode it.
        """
        self._check_fitted()
        BOOL("skip_seen", skip_seen)
        BOOL("compile", compile)
        new = self._prepare(df, None, self.data_.static_categories, self.data_.freq)
        if self.fill_missing is not None and starts_after_gap(self.data_, new):
            # a gap since the last absorbed step: filled by the gap rule, as inside the data
            frame, _, bridged = bridge_gaps(self.data_, df)
            new = drop_bridges(self._prepare(frame, None, self.data_.static_categories,
                                             self.data_.freq), bridged)
        if self.network in PRETRAINED_NETWORKS:
            self.data_, state = pretrained.absorb(self.network_, self.data_, new,
                                                  getattr(self, "stream_state_", None),
                                                  skip_seen=skip_seen)
            self.__dict__.pop("stream_state_", None)
            if state is not None:
                self.stream_state_ = state
            return self
        quantiles = None if self.head == "point" else self.config_.quantiles
        self.data_, state, self._streamed = streaming.absorb(
            self.network_, self.data_, new, self.config_.lookback,
            getattr(self, "stream_state_", None), skip_seen=skip_seen, compile=compile,
            progress=self._progress(), horizon=self.horizon, quantiles=quantiles)
        if state is not None:
            self.stream_state_ = state
        return self

    def reset_state(self) -> XLSTMForecaster:
        """Drop the carried stream state: the next :meth:`predict` or :meth:`update`
        re-encodes each series' last ``lookback`` steps (a fresh anchor). A scheduled job
        can call it periodically to bound the drift described in :meth:`update`."""
        self._check_fitted()
        for carried in ("stream_state_", "_streamed"):
            self.__dict__.pop(carried, None)
        return self

    # ------------------------------------------------------------------ evaluation

    def backtest(self, df, n_windows: int = 3, step: int | None = None,
                 refit: bool | int = False, static_df=None, baseline: str | None = None,
                 level: tuple[float, ...] = ()):
        """Rolling-origin evaluation on the long frame ``df``.

        The last ``n_windows`` cutoffs of every series are ``step`` (default: horizon)
        apart, the last one leaving exactly ``horizon`` steps after it. At each cutoff
        the model forecasts from the history before it. An unfitted estimator is fitted
        (on a clone: this one stays unfitted) on the history before the first cutoff,
        and refitted at every cutoff with ``refit=True``, every ``refit`` cutoffs with an
        int. A fitted estimator with ``refit=False`` forecasts with its weights as they
        are; where the windows lie inside the data it was fitted on, the errors are
        in-sample and an :class:`~xlstm_ts.evaluation.InSampleWarning` says so. Returns
        the forecasts with ``cutoff`` (last history time) and the actual ``target_col``;
        with ``baseline="seasonal_naive"`` (or ``"naive"``) also that baseline's
        forecast from the same history, in a column of its name (the season: the
        data's first usual cycle, e.g. 24 for hourly data; naive where there is none).
        ``level`` adds each window's bands, as :meth:`predict` gives them.
        :func:`xlstm_ts.tracking.tracked_backtest` also logs the errors to MLflow.
        """
        return backtesting.backtest(self, df, n_windows, step, refit, static_df, baseline,
                                    level)

    def score(self, df, metric: str = "mae", static_df=None) -> float:
        """Minus the ``metric`` (``"mae"``, ``"mse"``, ``"rmse"``, ``"smape"``) of the
        fitted model's forecasts for the last ``horizon`` steps of each series of ``df``,
        made from the history before them.

        Higher is better, as scikit-learn's ``score`` (so ``GridSearchCV`` and other
        searches pick the most accurate model): ``-score(df)`` is the error itself,
        :func:`xlstm_ts.evaluation.forecast_error`. Warns (:class:`~xlstm_ts.evaluation.
        InSampleWarning`) when those steps lie inside the data the model was fitted on.
        """
        self._check_fitted()
        return -backtesting.forecast_error(self, df, metric, static_df)

    def conformalize(self, df, n_windows: int = 5, step: int | None = None, static_df=None):
        """Calibrate the bands of ``predict(level=...)`` on backtest errors of the fitted
        model (split-conformal prediction), replacing ``interval_calibration_``.

        Runs :meth:`backtest` (no refit) on ``df`` and keeps each window's signed errors
        per horizon step, divided by the spread of the history it was forecast from
        (:mod:`xlstm_ts.calibration`). Calibrate on data after the training span (fit
        on an earlier cut, conformalize on the full frame): errors on windows the model
        was fitted on are too small, give bands too narrow, and raise an
        ``InSampleWarning``. Bands of any level follow, for every head.
        """
        self._check_fitted()
        errors = backtesting.conformal_errors(self, df, n_windows, step, static_df)
        if not np.isfinite(errors).any():
            raise ValueError("conformalize found no actual after its cutoffs to measure "
                             "errors on: pass data that extends past the forecast origins "
                             "(n_windows windows of the horizon at the end of each series).")
        self.interval_calibration_ = BandCalibration.from_errors(errors, "backtest")
        return self

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the fitted model to directory ``path`` (see :mod:`xlstm_ts.persistence`):
        staged beside it and swapped in, so a failed save leaves the previous model. In a
        data-parallel run only global rank 0 writes; the other ranks return."""
        self._check_fitted()
        from ._ranks import is_rank_zero

        if not is_rank_zero():
            return
        params = {k: v for k, v in self.get_params().items() if k not in ("logger", "callbacks")}
        persistence.save_model(
            path, params, self.config_, self.network_, self.data_,
            loss_history=getattr(self, "loss_history_", None),
            calibration=getattr(self, "interval_calibration_", None),
            stream_state=getattr(self, "stream_state_", None),
            extra=({"finetuned": self.finetuned_,
                    "nonnegative": getattr(self, "nonnegative_", None)}
                   if self.config_ is None else
                   {"nonnegative": getattr(self, "nonnegative_", None),
                    "correction_share": list(getattr(self, "correction_share_", [])),
                    "interval_coverage": {str(k): v for k, v in
                                          getattr(self, "interval_coverage_", {}).items()}}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> XLSTMForecaster:
        """Load a model written by :meth:`save` (no pickled objects are read). MLflow URIs
        (``runs:/...``, ``models:/...``) load through :func:`xlstm_ts.tracking.load`."""
        saved = persistence.load_model(path)
        model = cls(**saved.params)
        model.config_, model.network_, model.data_ = saved.config, saved.network, saved.data
        model.n_models_ = 1 if saved.config is None else saved.config.n_models
        if saved.config is None:  # a pretrained network
            model.finetuned_ = bool(saved.extra.get("finetuned", False))
            model.lookback_ = saved.network.config.context_len
        else:
            model.lookback_ = saved.config.lookback
            if saved.extra.get("correction_share"):
                model.correction_share_ = [float(v) for v in saved.extra["correction_share"]]
            model.interval_coverage_ = {float(k): float(v) for k, v in
                                        (saved.extra.get("interval_coverage") or {}).items()}
        model.freq_ = saved.data.freq
        model.nonnegative_ = saved.extra.get("nonnegative")  # None: saved before the floor
        if saved.loss_history:
            model.loss_history_ = saved.loss_history
        if saved.calibration is not None:
            model.interval_calibration_ = saved.calibration
        if saved.stream_state is not None:
            model.stream_state_ = saved.stream_state
        return model

