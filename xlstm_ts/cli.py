"""Command-line entry point ``xlstm-ts`` (also ``python -m xlstm_ts``).

Exit codes: 0 success, 2 bad config or input (one-paragraph message, traceback only
with ``--debug``), 1 unexpected failure. Logs go to stderr. Outputs are written to
a temporary file in the target directory and renamed, so a killed job leaves the
previous output intact and never a partial file.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from ._io import atomic_write, swap_in
from ._version import __version__

log = logging.getLogger("xlstm_ts")


class InputError(ValueError):
    """Bad input files or arguments (exit code 2)."""


def read_frame(path: str | Path):
    """A polars frame from a CSV or Parquet file (dates parsed)."""
    import polars as pl

    path = Path(path)
    if not path.exists():
        raise InputError(f"input file {path} does not exist.")
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"{path}: unsupported file type {path.suffix!r}; use .csv or .parquet.")
    try:
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
        else:
            try:
                frame = pl.read_csv(path, try_parse_dates=True)
            except pl.exceptions.ComputeError:  # types guessed from the first rows were wrong
                frame = pl.read_csv(path, try_parse_dates=True, infer_schema_length=None)
    except (pl.exceptions.PolarsError, OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot be read as {path.suffix[1:].upper()} "
                         f"({type(err).__name__}: {err}).") from None
    if frame.width == 0 or frame.height == 0:
        raise InputError(f"{path}: the file holds no rows.")
    return frame


def check_writable(path: str | Path) -> None:
    """InputError unless ``path`` can be created: its nearest existing ancestor must be a
    writable directory (checked before training, not after)."""
    path = Path(path)
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {path}: {parent} is a file, not a directory.")
    if not os.access(parent, os.W_OK):
        raise InputError(f"cannot write {path}: {parent} is not writable.")


def write_frame(frame, path: str | Path) -> None:
    """Write a polars frame atomically (temporary file in the same directory, rename);
    in a data-parallel run only global rank 0 writes."""
    from ._ranks import is_rank_zero

    path = Path(path)
    if path.suffix not in (".csv", ".parquet"):
        raise InputError(f"{path}: unsupported output type {path.suffix!r}; use .csv or .parquet.")
    check_writable(path)
    if not is_rank_zero():
        return
    if path.suffix == ".parquet":
        atomic_write(path, frame.write_parquet)
    else:
        atomic_write(path, frame.write_csv)


def _save_model_atomically(model, directory: str | Path) -> None:
    """Save the model (``save`` stages and swaps the directory in; rank 0 only)."""
    model.save(directory)


def _model(config, interactive: bool):
    from .forecaster import XLSTMForecaster

    data = config.data
    return XLSTMForecaster(**{"id_col": data.id_col, "time_col": data.time_col,
                              "target_col": data.target_col, "progress_bar": interactive,
                              **config.model})


def _data(config, path: str | None = None):
    """The configured data (or the file ``path`` in the configured layout) as a long
    polars frame."""
    from .data import rows_to_long, wide_to_long

    frame = read_frame(path or config.data.path)
    d = config.data
    if d.layout == "wide":
        frame = wide_to_long(frame, time_col=d.time_col, id_col=d.id_col, target_col=d.target_col)
    elif d.layout == "rows":
        frame = rows_to_long(frame, id_col=d.id_col, time_col=d.time_col, target_col=d.target_col)
    return frame


def _static(config):
    return read_frame(config.data.static_path) if config.data.static_path else None


def cmd_validate(args) -> int:
    """xlstm-ts validate: check the config and the data without training."""
    from .config import load_config

    config = load_config(args.config, args.set)
    data = _model(config, args.interactive).check(_data(config), _static(config))
    log.info("config and data are valid: %d series, %d rows, frequency %s", data.n_series,
             int(data.lengths.sum()), data.freq)
    return 0


def cmd_fit(args) -> int:
    """xlstm-ts fit: train and save the model to output.model_dir."""
    from .config import load_config
    from .tracking import tracked_fit

    config = load_config(args.config, args.set)
    check_writable(config.output.model_dir)
    model = tracked_fit(_model(config, args.interactive), _data(config),
                        static_df=_static(config), tracking=config.tracking_arg(),
                        registered_model_name=config.tracking.registered_model_name)
    _save_model_atomically(model, config.output.model_dir)
    log.info("model saved to %s (%d series, %d epochs%s)", config.output.model_dir,
             model.data_.n_series, model.epochs_trained_, _best_val(model))
    return 0


def _best_val(model) -> str:
    best = model.best_val_loss_
    return "" if best is None else f", best val_loss {best:.4g}"


def cmd_backtest(args) -> int:
    """xlstm-ts backtest: rolling-origin evaluation to output.backtest."""
    from .config import load_config
    from .evaluation import evaluate
    from .tracking import tracked_backtest

    config = load_config(args.config, args.set)
    check_writable(config.output.backtest)
    b = config.backtest
    result = tracked_backtest(_model(config, args.interactive), _data(config),
                              n_windows=b.n_windows, step=b.step, refit=b.refit,
                              static_df=_static(config), tracking=config.tracking_arg())
    write_frame(result, config.output.backtest)
    errors = evaluate(result, metrics=("mae", "mse"), id_col=config.data.id_col,
                      target_col=config.data.target_col)
    log.info("backtest: %d windows, MAE %.4g, MSE %.4g; forecasts written to %s", b.n_windows,
             errors["mae"], errors["mse"], config.output.backtest)
    return 0


def cmd_tune(args) -> int:
    """xlstm-ts tune: Optuna search; saves the refitted best model (a ``--worker`` only
    adds its trials to the shared study)."""
    from .config import load_config
    from .tuning import tune

    config = load_config(args.config, args.set)
    t = config.tuning
    data = config.data
    storage, study = args.storage or t.storage, args.study or t.study_name
    if args.worker and not (storage and study):
        raise InputError("tune --worker shares a study: give --storage and --study (or "
                         "tuning.storage and tuning.study_name).")
    n_trials = t.n_trials if args.n_trials is None else args.n_trials
    if n_trials < 0:
        raise InputError(f"--n-trials must be 0 or more. Got {n_trials}.")
    fixed = {"id_col": data.id_col, "time_col": data.time_col, "target_col": data.target_col,
             "progress_bar": False, **config.model}
    result = tune(_data(config), t.search_space, n_trials=n_trials,
                  timeout=t.timeout, metric=t.metric, storage=storage, study_name=study,
                  pruner=t.pruner, sampler=t.sampler, static_df=_static(config),
                  tracking=config.tracking_arg(), worker=args.worker, **fixed)
    if args.worker:
        log.info("worker done: study %r holds %d trials, best %s %.4g", study,
                 len(result.study.trials), t.metric, result.best_score)
        return 0
    _save_model_atomically(result.forecaster, config.output.model_dir)
    summary = Path(config.output.model_dir) / "best_params.json"
    atomic_write(summary, lambda f: Path(f).write_text(json.dumps(
        {"best_params": result.best_params, "best_score": result.best_score}, indent=2,
        default=str)))
    log.info("best %s %.4g with %s", t.metric, result.best_score, result.best_params)
    return 0


def _predict_settings(args):
    """Model, input, output, horizon, as-of and update from the flags, falling back on the
    ``predict``, ``data`` and ``output`` sections of ``--config``."""
    from .config import load_config

    config = load_config(args.config, args.set) if args.config else None
    section = config.predict if config else None
    settings = {
        "model": args.model or (section.model if section else None),
        "input": args.input or (config.data.path if config else None),
        "output": args.output or (config.output.forecasts if config else None),
        "horizon": args.horizon if args.horizon is not None else (
            section.horizon if section else None),
        "as_of": args.as_of or (section.as_of if section else None),
        "update": args.update or bool(section and section.update),
        "future": args.future or (section.future if section else None),
    }
    missing = [f"--{k}" for k in ("model", "input", "output") if not settings[k]]
    if missing:
        raise InputError(f"predict needs {', '.join(missing)} (or --config with predict.model, "
                         f"data.path and output.forecasts).")
    return config, settings


def cmd_pretrain(args) -> int:
    """``xlstm-ts pretrain --config C``: build the corpus if missing, pretrain (resuming
    from the run folder's last checkpoint), write the network."""
    from .pretraining import PretrainConfig, pretrain

    summary = pretrain(PretrainConfig.load(args.config), progress_bar=args.interactive)
    log.info("pretrained %d steps, validation loss %.4g; checkpoint %s", summary["steps"],
             summary["val_loss"], summary["checkpoint"])
    return 0


def cmd_predict(args) -> int:
    """xlstm-ts predict: forecasts from a saved or logged model (optionally updating it)."""
    import pandas as pd
    import polars as pl

    from .data.frames import to_polars
    from .data.times import as_long_frame

    config, s = _predict_settings(args)
    if args.engine == "spark":
        return _predict_on_spark(s, args.spark_master)
    if s["update"] and str(s["model"]).startswith(("runs:/", "models:/")):
        raise InputError(f"--update saves the updated model back, so --model must be a model "
                         f"directory, not {s['model']}.")
    model = _load_model(s["model"])
    future = _future_rows(model, s)
    history = _data(config, s["input"]) if config else read_frame(s["input"])
    if model.time_col not in history.columns:
        raise InputError(f"{s['input']}: time column {model.time_col!r} is missing.")
    # times parsed for the cut; the rows keep the file's time type (dates stay dates)
    long = as_long_frame(history, model.id_col, model.time_col)
    history = long.with_columns(history[model.time_col])
    if s["as_of"] is not None:
        temporal = long[model.time_col].dtype.is_temporal()
        try:
            as_of = pd.Timestamp(s["as_of"]).to_datetime64() if temporal else int(s["as_of"])
        except ValueError:
            raise InputError(f"--as-of {s['as_of']!r} is not a time like the column "
                             f"{model.time_col!r}.") from None
        kept = long.select(pl.col(model.time_col) <= as_of).to_series()
        long, history = long.filter(kept), history.filter(kept)
        if history.is_empty():
            raise InputError(f"--as-of {s['as_of']}: no rows at or before it in {s['input']}.")
    try:
        if s["update"]:  # absorb new rows into the carried state, forecast from the new end
            model.update(history, skip_seen=True)
            forecast, _ = to_polars(model.predict(future_df=future, horizon=s["horizon"]))
            cutoffs = pl.DataFrame({model.id_col: model.data_.ids.tolist(),
                                    "cutoff": model.data_.last_times()})
        else:
            forecast, _ = to_polars(model.predict(df=history, future_df=future,
                                                  horizon=s["horizon"]))
            cutoffs = long.group_by(model.id_col).agg(
                pl.col(model.time_col).max().alias("cutoff"))
    except ValueError as err:  # name the file the user gave, not the Python argument
        if "future_df" not in str(err):
            raise
        raise InputError(str(err).replace("future_df", f"--future file {s['future']}")) from None
    forecast = forecast.join(cutoffs, on=model.id_col, how="left").with_columns(
        pl.col("cutoff").cast(forecast[model.time_col].dtype),  # one time type per file
        pl.lit(model.model_id_).alias("model_id"))
    write_frame(forecast, s["output"])  # forecasts first: a kill before the model save below
    if s["update"]:                     # leaves the old model, and a re-run redoes both
        _save_model_atomically(model, s["model"])
    log.info("%d forecasts for %d series written to %s", forecast.height,
             forecast[model.id_col].n_unique(), s["output"])
    return 0


def _load_model(source) -> object:
    """A saved model directory through the estimator alone; an MLflow URI through
    :func:`xlstm_ts.tracking.load` (MLflow is imported only then: a scheduled
    forecast from a directory starts without it)."""
    if str(source).startswith(("runs:/", "models:/")) or "://" in str(source):
        from .tracking import load

        return load(source)
    from .forecaster import XLSTMForecaster

    return XLSTMForecaster.load(source)


def _future_rows(model, s: dict):
    """The future-known covariates file (``--future``) when the model needs one."""
    needed = list(model.future_covariates)
    if not needed:
        if s["future"]:
            log.warning("--future %s ignored: the model uses no future covariates.", s["future"])
        return None
    if not s["future"]:
        horizon = s["horizon"] or model.horizon
        raise InputError(
            f"the model uses future-known covariates {needed}: pass --future FILE (or "
            f"predict.future in the config), a CSV or Parquet file with columns "
            f"{[model.id_col, model.time_col, *needed]} for the {horizon} steps after each "
            f"series' last time.")
    return read_frame(s["future"])


def _predict_on_spark(s: dict, master: str | None) -> int:
    """predict --engine spark: Parquet in, Parquet (a directory of part files) out."""
    if s["update"] or s["as_of"] or s["future"]:
        raise InputError("--engine spark makes plain forecasts: --update, --as-of and --future "
                         "are local-engine options (filter the Parquet input instead of --as-of).")
    for key in ("input", "output"):
        if Path(s[key]).suffix != ".parquet":
            raise InputError(f"--engine spark reads and writes Parquet; --{key} {s[key]} is "
                             f"not a .parquet path.")
    from pyspark.errors import AnalysisException
    from pyspark.sql import functions as F

    from .distributed import predict_spark, spark_session
    from .tracking import load

    model = load(s["model"])  # fails before Spark starts; gives the columns
    spark = spark_session(master)
    try:
        history = spark.read.parquet(str(s["input"]))
    except AnalysisException as err:
        if "NANOS" not in str(err):
            raise
        raise InputError(f"{s['input']}: Spark cannot read nanosecond timestamps. Write the "
                         f"file with microsecond ones (pandas: to_parquet(..., "
                         f"coerce_timestamps='us'); polars casts to Datetime('us')).") from None
    cutoffs = history.groupBy(model.id_col).agg(F.max(model.time_col).alias("cutoff"))
    forecast = (predict_spark(history, str(s["model"]), horizon=s["horizon"])
                .join(cutoffs, on=model.id_col, how="left")
                .withColumn("model_id", F.lit(str(s["model"]))))
    _write_spark_parquet(forecast, Path(s["output"]))
    log.info("spark forecasts written to %s", s["output"])
    return 0


def _write_spark_parquet(frame, path: Path) -> None:
    """Spark writes a directory of part files: into a sibling temporary directory first,
    then swapped in, so readers never see a half-written output."""
    staging = path.with_name(f".{path.name}.writing")
    frame.write.mode("overwrite").parquet(str(staging))
    swap_in(staging, path)


def _add_common_options(parser: argparse.ArgumentParser, defaults: dict) -> None:
    parser.add_argument("--debug", action="store_true", default=defaults["debug"],
                        help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", default=defaults["quiet"],
                        help="only errors on stderr")
    parser.add_argument("--log-level", default=defaults["log_level"],
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the xlstm-ts command."""
    parser = argparse.ArgumentParser(prog="xlstm-ts",
                                     description="Time-series forecasting with xLSTM.")
    parser.add_argument("--version", action="version", version=f"xlstm-ts {__version__}")
    # the common options go before or after the command (`xlstm-ts predict --quiet`);
    # after it they default to "not given", so they never undo the ones given before
    common = argparse.ArgumentParser(add_help=False)
    _add_common_options(parser, {"debug": False, "quiet": False, "log_level": "INFO"})
    _add_common_options(common, dict.fromkeys(("debug", "quiet", "log_level"),
                                              argparse.SUPPRESS))
    sub = parser.add_subparsers(dest="command", required=True)

    def with_config(name: str, func, text: str):
        p = sub.add_parser(name, help=text, parents=[common])
        p.add_argument("--config", required=True, help="YAML config file")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config key, e.g. --set model.max_epochs=5")
        p.set_defaults(func=func)
        return p

    with_config("fit", cmd_fit, "train a model and save it to output.model_dir")
    with_config("backtest", cmd_backtest, "rolling-origin evaluation")
    tune = with_config("tune", cmd_tune, "hyperparameter search with Optuna")
    tune.add_argument("--storage", help="Optuna storage URL shared by workers")
    tune.add_argument("--study", help="Optuna study name")
    tune.add_argument("--n-trials", type=int, help="trials to run here (default: "
                      "tuning.n_trials; 0 refits the shared study's best)")
    tune.add_argument("--worker", action="store_true",
                      help="run trials into the shared study only: no refit, no model "
                           "written (start one per process or machine)")
    with_config("validate", cmd_validate, "check config and data without training")
    pretrain = sub.add_parser("pretrain", parents=[common],
                              help="pretrain a TiRex-2-architecture network on a corpus")
    pretrain.add_argument("--config", required=True, help="YAML pretraining config")
    pretrain.set_defaults(func=cmd_pretrain)
    predict = sub.add_parser("predict", help="forecast from a saved or logged model",
                             parents=[common])
    predict.add_argument("--config", help="YAML config (predict, data and output sections)")
    predict.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                         help="override a config key, e.g. --set predict.horizon=48")
    predict.add_argument("--model", help="model dir, runs:/... or models:/...")
    predict.add_argument("--input", help="history (.csv or .parquet)")
    predict.add_argument("--output", help="forecasts (.csv or .parquet)")
    predict.add_argument("--horizon", type=int)
    predict.add_argument("--future", help="future-known covariates over the horizon (.csv or "
                         ".parquet: id, time and the model's future_covariates columns)")
    predict.add_argument("--as-of", help="ignore history after this time")
    predict.add_argument("--update", action="store_true",
                         help="absorb the input as new observations (rows already absorbed "
                              "are skipped), forecast from the carried state and save the "
                              "model back")
    predict.add_argument("--engine", choices=["local", "spark"], default="local",
                         help="spark: read Parquet input and forecast on Spark "
                              "(pip install 'xlstm-ts[spark]')")
    predict.add_argument("--spark-master", help="Spark master for --engine spark (default: "
                                                 "the active session or spark-submit's)")
    predict.set_defaults(func=cmd_predict)
    return parser


_THIRD_PARTY = ("lightning", "lightning.pytorch", "lightning.fabric", "pytorch_lightning",
                "mlflow", "optuna", "alembic", "urllib3")


_TRAINING_COMMANDS = ("fit", "backtest", "tune", "pretrain")  # the ones that load Lightning


def _configure_logging(level: int, trains: bool = True) -> None:
    """Our lines at ``level`` on stderr, once each; third-party INFO chatter (Lightning's
    device lines and tips, MLflow's and Optuna's notes), deprecation and experimental
    warnings and MLflow's download bars only at DEBUG. ``trains``: the command trains,
    so Lightning is loaded first (it sets its loggers up on import); a forecast from a
    saved model does not pay its seconds of start-up."""
    logging.basicConfig(level=level, stream=sys.stderr, format="%(levelname)s %(message)s")
    logging.getLogger("xlstm_ts").setLevel(level)
    chatty = level <= logging.DEBUG
    if trains:
        import lightning.pytorch  # noqa: F401

    for name in _THIRD_PARTY:
        logger = logging.getLogger(name)
        logger.handlers.clear()  # their own handler plus ours printed every line twice
        logger.propagate = True
        logger.setLevel(level if chatty else max(level, logging.WARNING))
    if not chatty:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("ignore", message=".*(LeafSpec|experimental).*")


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the command and return the process exit code."""
    args = build_parser().parse_args(argv)
    _configure_logging(logging.ERROR if args.quiet else getattr(logging, args.log_level),
                       trains=args.command in _TRAINING_COMMANDS)
    # Lightning's progress bar only when a person watches (and is not asking for quiet)
    args.interactive = sys.stderr.isatty() and not args.quiet
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as err:
        if args.debug:
            raise
        print(f"xlstm-ts {args.command}: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # unexpected: say so, keep the traceback behind --debug
        if args.debug:
            raise
        print(f"xlstm-ts {args.command}: unexpected {type(err).__name__}: {err} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
