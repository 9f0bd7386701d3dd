"""Experiment tracking with MLflow: runs, metrics, artifacts and a pyfunc model flavor.

``tracking`` arguments accept ``True`` (the default store), a tracking URI, an
experiment name, or ``{"uri": ..., "experiment": ...}``. The default store is
``$MLFLOW_TRACKING_URI`` or an embedded SQLite file ``mlflow.db`` in the working
directory, so nothing needs a server. The store is checked before any training
starts; logging after training never loses the trained model (it is saved
locally first, and a logging failure becomes a warning).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from lightning.pytorch.callbacks import Callback

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
    """Point MLflow at ``target`` and check the store answers, before any training."""
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


class ForecasterModel(mlflow.pyfunc.PythonModel):
    """pyfunc flavor: ``predict(history_df)`` returns the forecaster's forecasts."""

    def load_context(self, context) -> None:
        from .forecaster import XLSTMForecaster

        self.forecaster = XLSTMForecaster.load(context.artifacts["forecaster"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None
                ) -> pd.DataFrame:
        return self.forecaster.predict(df=pd.DataFrame(model_input))


def log_forecaster(forecaster, history: pd.DataFrame | None = None,
                   registered_model_name: str | None = None) -> str:
    """Log ``forecaster`` as a pyfunc model in the active run; returns its model URI."""
    from . import __version__

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forecaster"
        forecaster.save(path)
        example = signature = None
        if history is not None:
            example = history.groupby(forecaster.id_col).tail(forecaster.lookback)
            example = example.reset_index(drop=True)
            signature = mlflow.models.infer_signature(
                example, forecaster.predict(df=example))
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
