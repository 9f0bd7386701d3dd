"""Batch forecasts on Spark: many series, one saved or logged model, any cluster.

:func:`predict_spark` spreads whole series over Spark tasks with
``groupBy(...).applyInPandas``: each task receives the complete history of a
batch of series (a hash of the series id picks the batch), forecasts them in one
:meth:`XLSTMForecaster.predict` call, and returns rows with the same columns as
``predict``. The model is loaded once per Python worker process and kept for later
tasks (Spark reuses its Python workers by default).

PySpark is optional (``pip install 'xlstm-ts[spark]'``); this module imports it
only inside :func:`predict_spark`.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any

from ._checks import check_positive_int
from .data.frames import PRED_COL, quantile_column
from .forecaster import XLSTMForecaster
from .tracking import load

_BATCH_COL = "__xlstm_ts_batch"


@functools.lru_cache(maxsize=4)
def _load(model_uri: str) -> XLSTMForecaster:
    """The model behind ``model_uri``, loaded once per Python process."""
    return load(model_uri)


def _forecast_batch(history, *, model_uri: str, horizon: int | None, columns: list[str],
                    torch_threads: int | None):
    """One task: the forecasts (pandas) of every series in ``history`` (pandas)."""
    import torch

    if torch_threads is not None:
        torch.set_num_threads(torch_threads)
    model = _load(model_uri)
    # applyInPandas never hands over an empty group
    return model.predict(df=history.drop(columns=[_BATCH_COL]), horizon=horizon)[columns]


def predict_spark(spark_df, model_uri: str, *, horizon: int | None = None,
                  num_batches: int | None = None, torch_threads: int | None = 1):
    """Forecasts of every series in ``spark_df`` as a Spark DataFrame.

    Args:
        spark_df: a Spark DataFrame in the long layout the model was trained on (its
            id, time and target columns, plus any covariates it uses).
        model_uri: a directory written by :meth:`XLSTMForecaster.save` (reachable from
            every executor: a shared or mounted path) or an MLflow model URI
            (``runs:/<run_id>/model``, ``models:/<name>/<version>``).
        horizon: steps to forecast (default: the trained horizon).
        num_batches: groups the series are split into; each group is one task and one
            ``predict`` call (default: the frame's number of partitions, at least 1).
        torch_threads: PyTorch threads per task (1 keeps one task per core from
            oversubscribing it; None leaves PyTorch's default).

    Returns:
        A Spark DataFrame with the columns of ``predict``: the id and time columns (their
        input types), ``y_pred`` and, for probabilistic heads, ``y_pred_q<level>``.
        Rows come in no particular order.
    """
    try:
        from pyspark.sql import DataFrame
        from pyspark.sql import functions as F
        from pyspark.sql.types import DoubleType, StructField, StructType
    except ImportError as err:
        raise ImportError("predict_spark needs PySpark: pip install 'xlstm-ts[spark]'") from err
    if not isinstance(spark_df, DataFrame):
        raise TypeError(f"spark_df must be a pyspark.sql.DataFrame. Got "
                        f"{type(spark_df).__name__}.")
    for name, value in (("horizon", horizon), ("num_batches", num_batches)):
        if value is not None:
            check_positive_int(name, value)  # True is not a horizon
    model = _load(str(model_uri))  # on the driver: fails early, gives the output columns
    fields = {f.name: f for f in spark_df.schema.fields}
    for role, name in (("id_col", model.id_col), ("time_col", model.time_col),
                       ("target_col", model.target_col)):
        if name not in fields:
            raise ValueError(f"spark_df has no column {name!r} (the model's {role}); it has "
                             f"{sorted(fields)}.")
    value_cols = [PRED_COL]
    if model.config_ is None or model.head != "point":  # None: a pretrained network
        value_cols += [quantile_column(q) for q in model.quantiles]
    schema = StructType([StructField(model.id_col, fields[model.id_col].dataType),
                         StructField(model.time_col, fields[model.time_col].dataType),
                         *(StructField(c, DoubleType()) for c in value_cols)])
    batches = num_batches or max(spark_df.rdd.getNumPartitions(), 1)
    columns = [model.id_col, model.time_col, *value_cols]
    uri = str(model_uri)

    def task(history):  # a plain function: Spark reads the pandas UDF kind from it
        return _forecast_batch(history, model_uri=uri, horizon=horizon, columns=columns,
                               torch_threads=torch_threads)
    keyed = spark_df.withColumn(_BATCH_COL, F.pmod(F.xxhash64(model.id_col), F.lit(batches)))
    return keyed.groupBy(_BATCH_COL).applyInPandas(task, schema=schema)


def spark_session(master: str | None = None, app_name: str = "xlstm-ts", **conf: Any):
    """A SparkSession (the active one, or a new one on ``master``, e.g. ``"local[4]"``)
    with Arrow transfers on and UTC session time, so timestamps round-trip unchanged.
    In local mode the Python workers run this interpreter (unless ``PYSPARK_PYTHON``
    says otherwise), so they see the same installed packages."""
    from pyspark.sql import SparkSession

    if master is None or master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    settings = {"spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.sql.session.timeZone": "UTC", **conf}
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()
