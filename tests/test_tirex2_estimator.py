"""network="tirex2" through the estimator (issue 45, part 4): zero-shot predict on long
frames, fine-tuning with the pretrained weights kept when they are better, save/load,
zero-shot backtests, MLflow's pyfunc."""

import mlflow
import numpy as np
import pandas as pd
import polars as pl
import pytest
import torch
from sklearn.exceptions import NotFittedError
from tirex2_reference import config, reference_model, save_reference

from xlstm_ts import XLSTMForecaster
from xlstm_ts.models.tirex2 import SeriesInput, forecast, load_checkpoint
from xlstm_ts.tracking import DEFAULT_URI, load, tracked_fit

H = 12


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    cfg = config()
    return str(save_reference(reference_model(cfg), cfg, tmp_path_factory.mktemp("t2") / "ck"))


def _panel(n=120, k=3, promo=False):
    rng = np.random.default_rng(0)
    frames = []
    for j in range(k):
        t = np.arange(n)
        frame = pd.DataFrame({"unique_id": f"s{j}",
                              "ds": pd.date_range("2024-01-01", periods=n, freq="h"),
                              "y": 10 + j + np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n)})
        if promo:
            frame["promo"] = (t % 10 == 0).astype(float)
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def _model(checkpoint, **kw):
    return XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=H,
                           progress_bar=False, **kw)


def test_zero_shot_predict_is_the_networks_forecast(checkpoint):
    df = _panel()
    out = _model(checkpoint, quantiles=(0.1, 0.25, 0.5, 0.9)).predict(df, level=(80,))
    assert isinstance(out, pd.DataFrame) and len(out) == 3 * H
    net = load_checkpoint(checkpoint)
    y = torch.tensor(df[df.unique_id == "s1"]["y"].to_numpy(), dtype=torch.float32)
    q = forecast(net, [SeriesInput(y[None])], H)[0][0]  # (9, H)
    s1 = out[out.unique_id == "s1"]
    np.testing.assert_allclose(s1["y_pred"], q[4].numpy(), rtol=1e-5)
    np.testing.assert_allclose(s1["y_pred_lo80"], q[0].numpy(), rtol=1e-5)
    np.testing.assert_allclose(s1["y_pred_hi80"], q[8].numpy(), rtol=1e-5)
    np.testing.assert_allclose(s1["y_pred_q0.25"], ((q[1] + q[2]) / 2).numpy(), rtol=1e-5)
    assert s1["ds"].iloc[0] == df["ds"].max() + pd.Timedelta(hours=1)
    polars_out = _model(checkpoint).predict(pl.from_pandas(df))
    assert isinstance(polars_out, pl.DataFrame)
    np.testing.assert_allclose(polars_out["y_pred"].to_numpy(), out["y_pred"].to_numpy(),
                               rtol=1e-6)


def test_future_covariates_reach_the_network(checkpoint):
    df = _panel(promo=True)
    future = pd.concat([pd.DataFrame({"unique_id": f"s{j}", "ds": pd.date_range(
        df["ds"].max() + pd.Timedelta(hours=1), periods=H, freq="h"), "promo": 1.0})
        for j in range(3)])
    model = _model(checkpoint, future_covariates=("promo",))
    with_promo = model.predict(df, future_df=future)
    net = load_checkpoint(checkpoint)
    s0 = df[df.unique_id == "s0"]
    promo = torch.tensor(np.r_[s0["promo"].to_numpy(), np.ones(H)], dtype=torch.float32)
    q = forecast(net, [SeriesInput(torch.tensor(s0["y"].to_numpy(), dtype=torch.float32)[None],
                                   None, promo[None])], H)[0][0]
    np.testing.assert_allclose(with_promo[with_promo.unique_id == "s0"]["y_pred"], q[4].numpy(),
                               rtol=1e-5)


def test_bad_use_is_named(checkpoint):
    with pytest.raises(ValueError, match="pretrained= goes with network='tirex2'"):
        XLSTMForecaster(network="tirex2", horizon=H).predict(_panel())
    with pytest.raises(ValueError, match="pretrained= goes with network='tirex2'"):
        XLSTMForecaster(pretrained=checkpoint, horizon=H).fit(_panel())
    with pytest.raises(ValueError, match=r"level 0.025 is outside .*0\.1 to 0\.9"):
        _model(checkpoint).predict(_panel(), level=(95,))
    with pytest.raises(NotFittedError, match="predict\\(df\\) for zero-shot"):
        _model(checkpoint).predict()


def test_fine_tuning_trains_and_keeps_the_pretrained_weights_when_better(checkpoint):
    df = _panel()
    zero_shot = _model(checkpoint).predict(df)
    tuned = _model(checkpoint, max_epochs=2, batches_per_epoch=4, batch_size=8,
                   random_state=0).fit(df)
    assert tuned.epochs_trained_ >= 1 and len(tuned.loss_history_["val_loss"]) >= 1
    # a learning rate that wrecks the weights: validation keeps the pretrained ones
    wrecked = _model(checkpoint, max_epochs=1, batches_per_epoch=2, batch_size=8,
                     learning_rate=5.0, gradient_clip=None, random_state=0).fit(df)
    assert not wrecked.finetuned_
    pd.testing.assert_frame_equal(wrecked.predict(df), zero_shot)
    if tuned.finetuned_:
        assert not np.allclose(tuned.predict(df)["y_pred"], zero_shot["y_pred"])
    head_only = _model(checkpoint, finetune="head", max_epochs=1, batches_per_epoch=2,
                       batch_size=8, learning_rate=1e-2, random_state=0).fit(df)
    before, after = load_checkpoint(checkpoint), head_only.network_
    if head_only.finetuned_:  # only the head and the last block moved
        assert torch.equal(before.stack[0].time_mixer.ffn.proj_up.weight,
                           after.stack[0].time_mixer.ffn.proj_up.weight)
        assert not torch.equal(before.output_patch_embedding.output_layer.weight,
                               after.output_patch_embedding.output_layer.weight)


def test_fine_tuning_short_yearly_series_does_not_crash(checkpoint):
    # 40 series of 9-16 points (M3 Yearly's shortest): fewer than the two patches a
    # window normally needs before the validation part
    rng = np.random.default_rng(0)
    df = pd.concat([pd.DataFrame({"unique_id": f"y{j}", "ds": np.arange(n),
                                  "y": 100 + np.cumsum(rng.normal(2, 1, n))})
                    for j, n in enumerate(rng.integers(9, 17, 40))], ignore_index=True)
    model = XLSTMForecaster(network="tirex2", pretrained=checkpoint, horizon=6, max_epochs=1,
                            batches_per_epoch=2, batch_size=8, progress_bar=False,
                            random_state=0).fit(df)
    assert model.epochs_trained_ == 1
    assert np.isfinite(model.predict()["y_pred"]).all()


def test_save_load_and_zero_shot_backtest(checkpoint, tmp_path):
    df = _panel()
    model = _model(checkpoint, finetune=None).fit(df)
    assert model.epochs_trained_ == 0 and not model.finetuned_
    model.save(tmp_path / "m")
    again = XLSTMForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(again.predict(), model.predict())
    backtest = _model(checkpoint, finetune=None).backtest(df, n_windows=2)
    assert len(backtest) == 2 * 3 * H and backtest["y"].notna().all()
    history = df[df["ds"] <= df["ds"].max() - pd.Timedelta(hours=H)]
    last = _model(checkpoint).predict(history)
    np.testing.assert_allclose(backtest[backtest.cutoff == history["ds"].max()]["y_pred"],
                               last["y_pred"], rtol=1e-6)


def test_tracked_fit_logs_a_pyfunc_that_forecasts(checkpoint, tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    try:
        model = tracked_fit(_model(checkpoint, finetune=None), _panel(),
                            tracking={"uri": store, "experiment": "tirex2"})
        loaded = mlflow.pyfunc.load_model(model.model_uri_)
        history = _panel()
        np.testing.assert_allclose(loaded.predict(history)["y_pred"],
                                   model.predict(history)["y_pred"], rtol=1e-6)
        assert load(model.model_uri_).network == "tirex2"
    finally:
        mlflow.set_tracking_uri(DEFAULT_URI)


def test_conformalized_bands_beyond_the_networks_quantiles(checkpoint):
    df = _panel(n=200)
    model = _model(checkpoint, finetune=None).fit(df[df["ds"] < df["ds"].min()
                                                     + pd.Timedelta(hours=120)])
    model.conformalize(df, n_windows=3)
    assert model.interval_calibration_.source == "backtest"
    out = model.predict(df, level=(80, 95))  # 95: past the network's quantiles (0.1-0.9)
    assert (out["y_pred_lo95"] < out["y_pred_lo80"]).all()
    assert (out["y_pred_hi80"] < out["y_pred_hi95"]).all()


def test_cli_fits_and_predicts_with_a_pretrained_config(checkpoint, tmp_path):
    from xlstm_ts.cli import main

    _panel().to_csv(tmp_path / "data.csv", index=False)
    (tmp_path / "job.yaml").write_text(
        f"data:\n  path: {tmp_path / 'data.csv'}\nmodel:\n  network: tirex2\n"
        f"  pretrained: {checkpoint}\n  finetune: null\n  horizon: {H}\n"
        f"output:\n  model_dir: {tmp_path / 'model'}\n")
    assert main(["fit", "--config", str(tmp_path / "job.yaml")]) == 0
    assert main(["predict", "--model", str(tmp_path / "model"), "--input",
                 str(tmp_path / "data.csv"), "--output", str(tmp_path / "out.csv")]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    expected = _model(checkpoint).predict(_panel())
    np.testing.assert_allclose(out["y_pred"], expected["y_pred"], rtol=1e-5)


def test_optuna_searches_the_fine_tuning_space(checkpoint):
    from xlstm_ts.tuning import FINETUNE_SPACE, tune

    result = tune(_panel(), n_trials=2, network="tirex2", pretrained=checkpoint, horizon=H,
                  batches_per_epoch=2, batch_size=8, random_state=0)
    assert set(result.best_params) == set(FINETUNE_SPACE)
    assert len(result.study.trials) == 2 and result.forecaster.network == "tirex2"


def test_a_fit_calibrates_the_bands_on_its_validation_window(checkpoint):
    """Issue 47, item 6: fitted (even without fine-tuning), the pretrained network's bands
    are calibrated on the forecasts of each series' last val_size steps from the
    history before them; zero-shot predict without fit serves the network's own."""
    from xlstm_ts.calibration import spread
    from xlstm_ts.models.tirex2 import SeriesInput, forecast

    df = _panel(n=200, k=12)
    model = _model(checkpoint, finetune=None, val_size=H).fit(df)
    calibration = model.interval_calibration_
    assert calibration.source == "validation" and (calibration.n_errors == 12).all()
    net = load_checkpoint(checkpoint)  # the errors by hand: series s2
    y = torch.tensor(df[df.unique_id == "s2"]["y"].to_numpy(), dtype=torch.float32)
    median = forecast(net, [SeriesInput(y[None, :-H])], H)[0][0][4]
    history = y[:-H].numpy()[-net.config.context_len:]
    error = np.abs(y[-H:].numpy() - median.numpy()) / spread(history[None],
                                                             np.ones((1, len(history)), bool))
    assert np.all(calibration.offsets[:, 0] <= error + 1e-6)  # the smallest of 12 errors
    assert np.all(error <= calibration.offsets[:, -1] + 1e-6)  # the largest
    out = model.predict(level=(80, 95))  # 95: past the network's quantiles
    assert ((out["y_pred_lo95"] < out["y_pred_lo80"])  # 12 errors: 95% is the largest
            & (out["y_pred_hi80"] < out["y_pred_hi95"])).all()
    raw = _model(checkpoint, finetune=None, val_size=H, intervals="head").fit(df)
    assert not hasattr(raw, "interval_calibration_")
    with pytest.raises(ValueError, match="outside the range"):
        raw.predict(level=(95,))
