"""Distributed batch forecasts on Spark (local[2]): the same numbers as predict."""


import numpy as np
import pandas as pd
import pytest

from xlstm_ts import XLSTMForecaster

pyspark = pytest.importorskip("pyspark", reason="the spark extra is not installed")


@pytest.fixture(scope="module")
def spark():
    from xlstm_ts.distributed import spark_session

    session = spark_session("local[2]", **{"spark.ui.enabled": "false",
                                           "spark.sql.shuffle.partitions": "4"})
    yield session
    session.stop()


@pytest.fixture(scope="module")
def panel_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    t = np.arange(200)
    df = pd.concat([pd.DataFrame({
        "unique_id": f"s{i}", "ds": pd.date_range("2024-01-01", periods=200, freq="h"),
        "y": np.sin(2 * np.pi * (t + i) / 24) * (1 + i) + 0.1 * rng.standard_normal(200)})
        for i in range(9)], ignore_index=True)
    model = XLSTMForecaster(lookback=48, horizon=12, patch_len=8, patch_stride=4, d_model=16,
                            head="quantile", max_epochs=2, batches_per_epoch=5,
                            progress_bar=False, random_state=0).fit(df)
    path = tmp_path_factory.mktemp("spark") / "model"
    model.save(path)
    return df, model, path


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def test_predict_spark_equals_predict(spark, panel_model):
    from xlstm_ts.distributed import predict_spark

    df, model, path = panel_model
    got = predict_spark(spark.createDataFrame(df), str(path), num_batches=3).toPandas()
    expected = model.predict(df=df)
    assert list(got.columns) == list(expected.columns)
    got, expected = _sorted(got), _sorted(expected)
    pd.testing.assert_frame_equal(got[["unique_id", "ds"]], expected[["unique_id", "ds"]],
                                  check_dtype=False)
    np.testing.assert_allclose(got.drop(columns=["unique_id", "ds"]).to_numpy(),
                               expected.drop(columns=["unique_id", "ds"]).to_numpy(),
                               rtol=1e-5, atol=1e-6)


def test_predict_spark_rejects_bad_input(spark, panel_model):
    from xlstm_ts.distributed import predict_spark

    df, _, path = panel_model
    with pytest.raises(TypeError, match="spark_df"):
        predict_spark(df, str(path))
    with pytest.raises(ValueError, match="'y'"):
        predict_spark(spark.createDataFrame(df.drop(columns=["y"])), str(path))
    with pytest.raises(ValueError, match="horizon"):
        predict_spark(spark.createDataFrame(df), str(path), horizon=0)
    with pytest.raises(TypeError, match="horizon must be a positive int"):
        predict_spark(spark.createDataFrame(df), str(path), horizon=True)


def test_cli_predict_on_spark(spark, panel_model, tmp_path):
    from xlstm_ts.cli import main

    df, model, path = panel_model
    import pyarrow as pa
    import pyarrow.parquet as pq

    nanos = pa.Table.from_pandas(df, preserve_index=False)
    nanos = nanos.set_column(1, "ds", nanos["ds"].cast(pa.timestamp("ns")))
    pq.write_table(nanos, tmp_path / "nanos.parquet")  # Spark cannot read ns timestamps
    bad = ["--quiet", "predict", "--engine", "spark", "--model", str(path), "--input",
           str(tmp_path / "nanos.parquet"), "--output", str(tmp_path / "never.parquet")]
    assert main(bad) == 2 and not (tmp_path / "never.parquet").exists()
    df.to_parquet(tmp_path / "history.parquet", coerce_timestamps="us")
    out = tmp_path / "forecasts.parquet"
    args = ["--quiet", "predict", "--engine", "spark", "--model", str(path), "--input",
            str(tmp_path / "history.parquet"), "--output", str(out)]
    assert main(args) == 0
    assert main(args) == 0  # a re-run replaces the output directory
    got = _sorted(pd.read_parquet(out))
    assert {"cutoff", "model_id"} <= set(got.columns) and len(got) == 9 * 12
    np.testing.assert_allclose(got["y_pred"], _sorted(model.predict(df=df))["y_pred"],
                               rtol=1e-5, atol=1e-6)
    assert not list(tmp_path.glob(".forecasts.parquet.*"))  # no staging left behind
    assert main([*args[:-1], str(tmp_path / "f.csv")]) == 2  # Parquet only


def test_predict_spark_with_a_pretrained_network(spark, panel_model, tmp_path):
    """network="tirex2": the same quantile columns and numbers as predict."""
    from tirex2_reference import config, reference_model, save_reference

    from xlstm_ts.distributed import predict_spark

    df, _, _ = panel_model
    cfg = config()
    folder = save_reference(reference_model(cfg), cfg, tmp_path / "ck")
    model = XLSTMForecaster(network="tirex2", pretrained=str(folder), horizon=12,
                            finetune=None).fit(df)
    model.save(tmp_path / "model")
    got = _sorted(predict_spark(spark.createDataFrame(df), str(tmp_path / "model"),
                                num_batches=2).toPandas())
    expected = _sorted(model.predict(df=df))
    assert list(got.columns) == list(expected.columns)
    # batches of other sizes round differently in float32 (series of scale 1 to 9)
    np.testing.assert_allclose(got.drop(columns=["unique_id", "ds"]).to_numpy(),
                               expected.drop(columns=["unique_id", "ds"]).to_numpy(),
                               rtol=1e-5, atol=1e-4)
