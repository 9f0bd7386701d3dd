"""A real MLflow store (SQLite in a temp dir): runs, metrics, artifacts, pyfunc, registry."""

import subprocess

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster, datasets
from xlstm_ts.tracking import DEFAULT_URI, load, resolve, tracked_backtest, tracked_fit
from xlstm_ts.tuning import tune

SMALL = {"lookback": 96, "horizon": 24, "patch_len": 24, "patch_stride": 12, "max_epochs": 2,
         "batches_per_epoch": 5, "d_model": 16, "num_heads": 2, "progress_bar": False,
         "random_state": 0}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    yield uri
    mlflow.set_tracking_uri(DEFAULT_URI)


@pytest.fixture(scope="module")
def df():
    return datasets.synthetic(2, 24 * 12, seasonalities=(24,), noise=0.3, seed=1)


@pytest.fixture(scope="module")
def tracked(store, df):
    model = XLSTMForecaster(**SMALL)
    tracked_fit(model, df, tracking={"uri": store, "experiment": "fit"},
                registered_model_name="synthetic-xlstm")
    return model


def test_fit_logs_params_metrics_artifacts_and_model(tracked, store):
    client = mlflow.MlflowClient(store)
    run = client.get_run(tracked.run_id_)
    assert run.data.params["d_model"] == "16" and run.data.params["data.n_series"] == "2"
    assert run.data.tags["version.torch"] == torch.__version__
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    expected = head.stdout.strip() if head.returncode == 0 else "unknown"
    assert run.data.tags["git_commit"] == expected
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_loss")] == [0, 1]
    assert run.data.metrics["correction_share"] == tracked.correction_share_[0]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"forecast.png", "config.json"} <= artifacts


def test_pyfunc_and_uri_loading_give_identical_forecasts(tracked, store, df):
    mlflow.set_tracking_uri(store)
    history = df.groupby("unique_id").head(24 * 10)
    pyfunc = mlflow.pyfunc.load_model(tracked.model_uri_)
    pd.testing.assert_frame_equal(pyfunc.predict(history), tracked.predict(df=history))
    by_run = load(f"runs:/{tracked.run_id_}/model")
    np.testing.assert_array_equal(by_run.predict()["y_pred"], tracked.predict()["y_pred"])
    registered = load("models:/synthetic-xlstm/1")
    np.testing.assert_array_equal(registered.predict()["y_pred"], tracked.predict()["y_pred"])


def test_tune_makes_a_parent_run_with_nested_trials(store, df):
    space = {"d_model": {"type": "categorical", "choices": [8, 16]}}
    result = tune(df, space, n_trials=2, tracking={"uri": store, "experiment": "tune"},
                  study_name="nested", **{k: v for k, v in SMALL.items() if k != "d_model"})
    runs = mlflow.search_runs(experiment_names=["tune"], output_format="list")
    parents = [r for r in runs if r.info.run_name == "tune:nested"]
    assert len(parents) == 1 and "best_mae" in parents[0].data.metrics
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") ==
                parents[0].info.run_id]
    trials = [r for r in children if "optuna.trial" in r.data.tags]
    assert len(trials) == 2 and all("mae" in r.data.metrics for r in trials)
    # names say what each run is, and never collide (the refit once shared trial 1's)
    names = sorted(r.info.run_name for r in children)
    assert names == ["refit-best", "trial-0", "trial-1"]
    # the best score is the best trial's, labelled so on the refit; the refit is scored
    # by its own validation loss (it trained on the steps the trials were scored on)
    best = result.study.best_trial
    refit = next(r for r in children if r.info.run_name == "refit-best")
    assert refit.data.tags["optuna.best_trial"] == str(best.number)
    assert refit.data.metrics["best_trial_mae"] == pytest.approx(best.value)
    assert parents[0].data.metrics["best_mae"] == pytest.approx(best.value)
    val = [v for v in result.forecaster.loss_history_["val_loss"] if v is not None]
    assert result.refit_val_loss == pytest.approx(min(val))
    assert parents[0].data.metrics["refit_val_loss"] == pytest.approx(min(val))
    assert refit.data.metrics["val_loss"] == pytest.approx(val[-1])  # last epoch's


def test_backtest_logs_errors_per_horizon_step(tracked, store, df):
    result = tracked_backtest(tracked, df, n_windows=2,
                              tracking={"uri": store, "experiment": "backtest"})
    run = mlflow.search_runs(experiment_names=["backtest"], output_format="list")[0]
    history = mlflow.MlflowClient(store).get_metric_history(run.info.run_id,
                                                            "backtest_mae_by_step")
    assert sorted(m.step for m in history) == list(range(1, 25))
    # the values, not only the steps: MAE of the returned forecasts at each step
    err = (result["y_pred"] - result["y"]).abs()
    step = result.groupby(["unique_id", "cutoff"]).cumcount() + 1
    expected = err.groupby(step).mean()
    logged = {m.step: m.value for m in history}
    np.testing.assert_allclose([logged[h] for h in expected.index], expected.to_numpy(),
                               rtol=1e-6)
    assert run.data.metrics["backtest_mae"] == pytest.approx(err.mean(), rel=1e-6)
    assert run.data.params["backtest.n_windows"] == "2" and run.data.params["horizon"] == "24"
    assert len(run.data.params["data.sha256"]) == 16
    artifacts = {a.path for a in mlflow.MlflowClient(store).list_artifacts(run.info.run_id)}
    assert {"backtest.csv", "backtest.png"} <= artifacts


def test_bad_tracking_uri_fails_before_training(df, monkeypatch):
    model = XLSTMForecaster(**SMALL)
    with pytest.raises(ValueError, match=r"MLflow tracking store 'nosuch://x' is not usable"):
        tracked_fit(model, df, tracking="nosuch://x")
    assert not hasattr(model, "network_")


def test_tracking_argument_forms(monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve(True).uri == "sqlite:///mlflow.db"
    assert resolve("my-experiment").experiment == "my-experiment"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert resolve(True).uri == "http://mlflow.example:5000"
    assert resolve(None) is None and resolve(False) is None
    with pytest.raises(TypeError, match="tracking must be"):
        resolve(3)


def test_a_failing_logging_step_after_training_keeps_the_trained_model(store, df, tmp_path):
    # a real failure, no mock: the experiment's artifact root lies below a regular file,
    # so every artifact write fails (NotADirectoryError, even for root)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    mlflow.set_tracking_uri(store)
    mlflow.create_experiment("broken-artifacts", artifact_location=f"file://{blocker}/art")
    model = XLSTMForecaster(**SMALL)
    with pytest.warns(RuntimeWarning, match="MLflow logging failed after training"):
        tracked_fit(model, df, tracking={"uri": store, "experiment": "broken-artifacts"})
    assert model.epochs_trained_ == 2
    assert len(model.predict()) == 2 * 24
    run = mlflow.MlflowClient(store).get_run(model.run_id_)
    assert run.data.params["d_model"] == "16"  # what was logged before the failure stays
    assert not hasattr(model, "model_uri_")


def test_tracked_fit_with_future_covariates_and_string_dates_stores_a_serving_model(store):
    """Both failed after training and stored no model (issue 49, item 2): the pyfunc had
    no way to receive future covariates ('pass future_df'), and a CSV's string dates
    broke the forecast plot ('tz must be string or tzinfo subclass')."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "datasets"
    sales = pd.read_csv(root / "store_sales.csv")  # dates as strings
    ahead = pd.read_csv(root / "store_sales_future.csv")
    model = XLSTMForecaster(id_col="store", time_col="date", target_col="sales", horizon=14,
                            future_covariates=("holiday",), fill_missing="ffill",
                            max_epochs=1, batches_per_epoch=2, d_model=8, num_heads=2,
                            progress_bar=False, random_state=0)
    with pytest.warns() as caught:
        tracked_fit(model, sales, tracking={"uri": store, "experiment": "future"})
    assert not [w for w in caught if "logging failed" in str(w.message)]
    artifacts = {a.path for a in mlflow.MlflowClient(store).list_artifacts(model.run_id_)}
    assert {"forecast.png", "config.json"} <= artifacts and model.model_uri_
    served = mlflow.pyfunc.load_model(model.model_uri_)
    horizon = ahead.groupby("store").head(14).assign(sales=np.nan)
    frame = pd.concat([sales, horizon], ignore_index=True)
    direct = model.predict(df=sales, future_df=horizon.drop(columns=["sales"]))
    np.testing.assert_allclose(served.predict(frame)["y_pred"], direct["y_pred"], rtol=1e-6)


def test_pyfunc_serves_csv_input_and_asks_only_for_the_columns_it_reads(tracked, store, df,
                                                                       tmp_path):
    """Issue 49, item 9: `mlflow models predict -t csv` failed on the date type (the
    signature demanded datetimes, a CSV gives strings), and the signature required
    every column of the fit frame, also those the model does not read."""
    from xlstm_ts.tracking import log_forecaster

    mlflow.set_tracking_uri(store)
    history = df.groupby("unique_id").head(24 * 10)
    with mlflow.start_run(experiment_id=mlflow.set_experiment("signature").experiment_id):
        uri = log_forecaster(tracked, history.assign(unused=1.0))
    inputs = mlflow.models.get_model_info(uri).signature.inputs
    assert inputs.input_names() == ["unique_id", "ds", "y"]
    history.to_csv(tmp_path / "input.csv", index=False)
    from_csv = pd.read_csv(tmp_path / "input.csv")  # dates as strings, as the CLI reads them
    served = mlflow.pyfunc.load_model(uri).predict(from_csv)
    np.testing.assert_allclose(served["y_pred"], tracked.predict(df=history)["y_pred"],
                               rtol=1e-6)
