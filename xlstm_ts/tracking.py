"""Experiment tracking with MLflow: runs, metrics, artifacts and a pyfunc model flavor.

``tracking`` arguments accept ``True`` (the default store), a tracking URI, an
experiment name, or ``{"uri": ..., "experiment": ...}``. The default store is
``$MLFLOW_TRACKING_URI`` or an embedded SQLite file ``mlflow.db`` in the working
directory, so nothing needs a server. The store is checked before any training
starts; logging after training never loses the trained model (it is saved
locally first, and a logging failure becomes a warning).

The estimator knows nothing of MLflow: :func:`tracked_fit` and
:func:`tracked_backtest` wrap its ``fit`` and ``backtest`` in a run, handing
:class:`EpochMetrics` to the fit as a Lightning callback.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import tempfile
import time
import urllib.parse
import uuid
import warnings
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl
from lightning.pytorch.callbacks import Callback

from ._ranks import is_rank_zero
from ._version import __version__
from .data.frames import PRED_COL, to_polars
from .data.times import as_long_frame
from .evaluation.plotting import plot_backtest, plot_forecast, plot_training
from .forecaster import XLSTMForecaster
from .persistence import jsonable

DEFAULT_URI = "sqlite:///mlflow.db"
DEFAULT_EXPERIMENT = "xlstm-ts"


@dataclass(frozen=True)
class Tracking:
    uri: str
    experiment: str


def resolve(tracking) -> Tracking | None:
    """Normalise a ``tracking`` argument; None/False means no tracking."""
    if tracking is None or tracking is False:
        return None
    default_uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_URI)
    if tracking is True:
        return Tracking(default_uri, DEFAULT_EXPERIMENT)
    if isinstance(tracking, dict):
        unknown = set(tracking) - {"uri", "experiment"}
        if unknown:
            raise ValueError(
                f"tracking dict accepts 'uri' and 'experiment'. Got {sorted(unknown)}."
            )
        return Tracking(tracking.get("uri", default_uri),
                        tracking.get("experiment", DEFAULT_EXPERIMENT))
    if isinstance(tracking, str):
        if "://" in tracking or tracking.startswith(("sqlite:", "file:", "databricks")):
            return Tracking(tracking, DEFAULT_EXPERIMENT)
        return Tracking(default_uri, tracking)
    raise TypeError(f"tracking must be True, a URI, an experiment name or a dict. "
                    f"Got {type(tracking).__name__}.")


def activate(target: Tracking) -> None:
    """Point MLflow at ``target`` and check the store answers, before any training.

    A server is first probed with a 5-second connection: MLflow's own client retries
    an unreachable server for minutes before it gives up."""
    _probe_server(target.uri)
    try:
        mlflow.set_tracking_uri(target.uri)
        if mlflow.get_experiment_by_name(target.experiment) is None:
            mlflow.create_experiment(target.experiment,
                                     artifact_location=_artifact_root(target.uri))
        mlflow.set_experiment(target.experiment)
    except Exception as err:  # any failure here means the store is unusable
        raise ValueError(
            f"MLflow tracking store {target.uri!r} is not usable ({type(err).__name__}: "
            f"{err}). Check the URI or server, or pass tracking=False."
        ) from err


def _probe_server(uri: str, timeout: float = 5.0) -> None:
    """ValueError unless an http(s) tracking server accepts a connection in time."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise ValueError(
            f"MLflow tracking store {uri!r} is not reachable ({type(err).__name__}: {err}; "
            f"waited {timeout:g} s). Check the URI or server, or pass tracking=False."
        ) from None


def _artifact_root(uri: str) -> str | None:
    """For a SQLite store, keep artifacts in ``mlartifacts/`` beside the database file
    (MLflow would otherwise use the working directory); other stores decide themselves."""
    if not uri.startswith("sqlite:///"):
        return None
    db = Path(uri.removeprefix("sqlite:///"))
    return (db.resolve().parent / "mlartifacts").as_uri()


def package_versions() -> dict[str, str]:
    """Versions of xlstm-ts and its main dependencies, as MLflow tags."""
    out = {}
    for name in ("xlstm-ts", "torch", "lightning", "polars", "pandas", "optuna", "mlflow"):
        try:
            out[f"version.{name}"] = version(name)
        except PackageNotFoundError:
            pass
    return out


def git_commit() -> str | None:
    """The commit of the working directory's git checkout, or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def data_summary(data) -> dict[str, object]:
    """Series count, lengths, frequency, time range and a content hash of a SeriesData."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(data.target.numpy()).tobytes())
    digest.update(np.asarray(data.times).astype("int64").tobytes())
    digest.update("\x1f".join(map(str, data.ids)).encode())
    lengths = data.lengths
    return {"data.n_series": int(data.n_series), "data.n_rows": int(lengths.sum()),
            "data.min_length": int(lengths.min()), "data.max_length": int(lengths.max()),
            "data.freq": str(data.freq), "data.start": str(np.min(data.times)),
            "data.end": str(np.max(data.times)), "data.sha256": digest.hexdigest()[:16]}


class EpochMetrics(Callback):
    """Log the epoch's train and validation losses to the active MLflow run."""

    def on_train_epoch_end(self, trainer, module) -> None:
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()
                   if k in ("train_loss", "val_loss")}
        if metrics and mlflow.active_run() is not None:
            mlflow.log_metrics(metrics, step=trainer.current_epoch)


def split_future_rows(frame: pd.DataFrame, id_col: str, target_col: str
                      ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(history, future rows or None): the rows after each series' last observed
    target are its future rows (future-known covariates over the horizon, the target
    empty); the rest is history."""
    position = np.arange(len(frame))
    observed = frame[target_col].notna().to_numpy()
    last_seen = pd.Series(np.where(observed, position, -1)).groupby(
        frame[id_col].to_numpy()).transform("max").to_numpy()
    after = (position > last_seen) & (last_seen >= 0)
    if not after.any():
        return frame, None
    return frame[~after].reset_index(drop=True), frame[after].reset_index(drop=True)


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """pyfunc flavor: ``predict(frame)`` returns the forecaster's forecasts. ``frame``
    holds each series' history and, for a model with future-known covariates, its
    future rows: the horizon's steps with those covariates and an empty target."""

    def load_context(self, context) -> None:
        self.forecaster = XLSTMForecaster.load(context.artifacts["forecaster"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        f = self.forecaster
        history, future = split_future_rows(pd.DataFrame(model_input), f.id_col, f.target_col)
        if future is not None:
            future = future.drop(columns=[f.target_col])
        return f.predict(df=history, future_df=future)


def _example(forecaster, history: pd.DataFrame) -> pd.DataFrame:
    """The pyfunc's input example: the columns the model reads, over the last steps of
    each series a forecast reads and, for future-known covariates, the last horizon as
    future rows (target emptied)."""
    given = [c for c in forecaster.future_covariates]
    read = dict.fromkeys([forecaster.id_col, forecaster.time_col, forecaster.target_col,
                          *forecaster.past_covariates, *given])
    tail = forecaster.context_steps_ + (forecaster.horizon if given else 0)
    example = history[[c for c in read if c in history.columns]]
    example = example.groupby(forecaster.id_col).tail(tail).reset_index(drop=True)
    if given:
        position = example.groupby(forecaster.id_col).cumcount(ascending=False)
        example[forecaster.target_col] = example[forecaster.target_col].astype(float).where(
            position >= forecaster.horizon)
    return example


def _signature(forecaster, example: pd.DataFrame, output: pd.DataFrame):
    """The pyfunc's signature, inferred from ``example`` and ``output``, with the time
    column's type left open: a CSV's string dates (``mlflow models predict -t csv``) and
    parsed datetimes are both accepted, as ``predict`` accepts them."""
    from mlflow.types.schema import AnyType, ColSpec, Schema

    inferred = mlflow.models.infer_signature(example, output)
    inputs = Schema([ColSpec(AnyType(), spec.name, required=spec.required)
                     if spec.name == forecaster.time_col else spec
                     for spec in inferred.inputs.inputs])
    return mlflow.models.ModelSignature(inputs, inferred.outputs)


def log_forecaster(forecaster, history: pd.DataFrame | None = None,
                   registered_model_name: str | None = None) -> str:
    """Log ``forecaster`` as a pyfunc model in the active run; returns its model URI."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forecaster"
        forecaster.save(path)
        example = signature = None
        if history is not None:
            example = _example(forecaster, history)
            history_part, future = split_future_rows(example, forecaster.id_col,
                                                     forecaster.target_col)
            output = forecaster.predict(df=history_part, future_df=None if future is None
                                        else future.drop(columns=[forecaster.target_col]))
            signature = _signature(forecaster, example, output)
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(Path(__file__).with_name("_mlflow_model.py")),
            artifacts={"forecaster": str(path)},
            signature=signature, input_example=example,
            registered_model_name=registered_model_name,
            pip_requirements=[f"xlstm-ts=={__version__}"])
    return info.model_uri


def download_model(uri: str) -> Path:
    """Local directory of the forecaster logged at a ``runs:/`` or ``models:/`` URI."""
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    candidates = [local / "artifacts" / "forecaster", local]
    for candidate in candidates:
        if (candidate / "config.json").exists():
            return candidate
    raise ValueError(f"{uri} does not hold an xlstm-ts forecaster (no config.json found).")


def warn_logging_failed(err: Exception) -> None:
    """Warn that MLflow logging failed after training (the model is kept)."""
    warnings.warn(f"MLflow logging failed after training ({type(err).__name__}: {err}); "
                  f"the fitted model is kept in memory.", RuntimeWarning, stacklevel=3)


def load(uri: str | os.PathLike) -> XLSTMForecaster:
    """A forecaster from a model directory, or logged to MLflow (``runs:/<run_id>/model``,
    ``models:/<name>/<version>``)."""
    if str(uri).startswith(("runs:/", "models:/")):
        uri = download_model(str(uri))
    return XLSTMForecaster.load(uri)


def _run_name(kind: str) -> str:
    """A run name that stays unique when seeded code reseeds Python's ``random`` (which
    MLflow's own name generator draws from: a tuning refit and its trial 1 collided)."""
    return f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"


def _spread_ids(ids, n: int = 4) -> list:
    """``n`` ids spread evenly over the sorted ids, first and last included (the first
    four alphabetically left ETTh1's target channel OT out of every plot)."""
    ordered = sorted(dict.fromkeys(ids), key=str)
    picks = np.unique(np.linspace(0, len(ordered) - 1, min(n, len(ordered))).round())
    return [ordered[int(k)] for k in picks]


def tracked_fit(model: XLSTMForecaster, df, static_df=None, val_size: int | None = None, *,
                tracking=True, registered_model_name: str | None = None,
                log_model: bool = True, run_name: str | None = None,
                **fit_options) -> XLSTMForecaster:
    """``model.fit(df, ...)`` recorded in MLflow: parameters, data summary, per-epoch
    losses, a forecast plot and the model as a pyfunc (registered under
    ``registered_model_name`` if given). ``tracking`` as in :func:`resolve`; the store
    is checked before training. Other ranks of a data-parallel run train alongside
    rank 0 but record nothing. Sets ``run_id_`` and ``model_uri_`` on the model."""
    target = resolve(tracking) if is_rank_zero() else None
    if target is None:
        return model.fit(df, static_df, val_size, **fit_options)
    activate(target)  # fail fast, before training
    with mlflow.start_run(nested=mlflow.active_run() is not None,
                          run_name=run_name or _run_name("fit")):
        params = _params(model)
        mlflow.log_params(params)
        mlflow.set_tags({**package_versions(), "git_commit": git_commit() or "unknown"})
        model.run_id_ = mlflow.active_run().info.run_id  # also when the fit stops early
        model.fit(df, static_df, val_size, callbacks=[EpochMetrics()], **fit_options)
        try:
            mlflow.log_params(data_summary(model.data_))
            if model.config_ is not None:  # a window network (not a pretrained one)
                mlflow.log_metric("correction_share",  # 0: the linear start was kept
                                  sum(model.correction_share_) / len(model.correction_share_))
            else:
                mlflow.log_metric("finetuned", float(model.finetuned_))
            raw, _ = to_polars(df)
            history = raw.to_pandas()  # the signature takes the caller's column types
            parsed = as_long_frame(raw, model.id_col, model.time_col).to_pandas()
            mlflow.log_figure(plot_forecast(  # parsed times: a CSV's string dates plot too
                *_plotted(model, parsed), ids=_spread_ids(model.data_.ids.tolist()),
                id_col=model.id_col, time_col=model.time_col,
                target_col=model.target_col), "forecast.png")
            if model.loss_history_["epoch"]:  # a zero-shot fit trains nothing
                mlflow.log_figure(plot_training(model), "training.png")
            network = (model.network_.config.to_dict() if model.config_ is None
                       else asdict(model.config_))
            mlflow.log_dict({"params": params, "network": jsonable(network)}, "config.json")
            if log_model:
                model.model_uri_ = log_forecaster(model, history, registered_model_name)
        except Exception as err:  # the trained model must survive a logging failure
            warn_logging_failed(err)
    return model


def _plotted(model: XLSTMForecaster, history: pd.DataFrame):
    """(history, forecast) for the fit's plot: the forecast after the data; with
    future-known covariates (unknown past the data) the forecast of the data's last
    horizon instead, from the history before it, beside its actuals."""
    if not model.future_covariates:
        return history, model.predict()
    position = history.groupby(model.id_col).cumcount(ascending=False)
    before, last = history[position >= model.horizon], history[position < model.horizon]
    return history, model.predict(df=before, future_df=last.drop(columns=[model.target_col]))


def _params(model: XLSTMForecaster) -> dict[str, str]:
    return {k: str(v) for k, v in model.get_params().items()
            if k not in ("logger", "callbacks")}


def tracked_backtest(model: XLSTMForecaster, df, n_windows: int = 3, step: int | None = None,
                     refit: bool | int = False, static_df=None, *, tracking=True,
                     run_name: str | None = None):
    """``model.backtest(...)`` recorded in an MLflow run: the model's parameters, the
    data summary and content hash, the backtest settings; the headline errors
    ``backtest_mae`` / ``backtest_mse`` over all forecasts, their curves by horizon
    step (``backtest_mae_by_step`` at steps 1..H), and the forecasts (``backtest.csv``)
    with their plot (``backtest.png``) as artifacts."""
    target = resolve(tracking)
    if target is None:
        return model.backtest(df, n_windows, step, refit, static_df)
    activate(target)
    with mlflow.start_run(nested=mlflow.active_run() is not None,
                          run_name=run_name or _run_name("backtest")):
        mlflow.log_params({**_params(model), "backtest.n_windows": n_windows,
                           "backtest.step": str(step), "backtest.refit": str(refit)})
        mlflow.set_tags({**package_versions(), "git_commit": git_commit() or "unknown"})
        result = model.backtest(df, n_windows, step, refit, static_df)
        frame, _ = to_polars(result)
        errors = frame.with_columns(
            pl.int_range(pl.len()).over(model.id_col, "cutoff").alias("step"),
            (pl.col(PRED_COL) - pl.col(model.target_col)).alias("err"),
        ).drop_nulls("err")
        per_step = errors.group_by("step").agg(
            pl.col("err").abs().mean().alias("mae"),
            (pl.col("err") ** 2).mean().alias("mse")).sort("step")
        for row in per_step.iter_rows(named=True):
            mlflow.log_metrics({"backtest_mae_by_step": row["mae"],
                                "backtest_mse_by_step": row["mse"]}, step=row["step"] + 1)
        mlflow.log_metrics({"backtest_mae": float(errors["err"].abs().mean()),
                            "backtest_mse": float((errors["err"] ** 2).mean())})
        try:
            history, _ = to_polars(df)
            mlflow.log_params(data_summary(model.check(history, static_df)))
            with tempfile.TemporaryDirectory() as folder:
                path = Path(folder) / "backtest.csv"
                frame.write_csv(path)
                mlflow.log_artifact(str(path))
            mlflow.log_figure(plot_backtest(result, id_col=model.id_col,
                                            target_col=model.target_col), "backtest.png")
        except Exception as err:  # the backtest result must survive a logging failure
            warn_logging_failed(err)
    return result
