"""Behaviours nothing checked before (issue 20): refitting backtests, the distribution
heads and other losses through the estimator, past covariates, statics for new
series, interval levels, local ETTm1 copies, tuning variants, and the CLI's exit 1."""

import numpy as np
import pandas as pd
import pytest
from lightning.pytorch.callbacks import Callback

from xlstm_ts import XLSTMForecaster, datasets

SMALL = dict(horizon=6, lookback=24, d_model=8, num_heads=2, max_epochs=1,
             batches_per_epoch=2, progress_bar=False, random_state=0)


@pytest.fixture(scope="module")
def panel():
    return datasets.synthetic(n_series=3, length=200, seasonalities=(24,), seed=1)


FITS: list = []  # shared by the copies clone() makes of the callback


class CountFits(Callback):
    """A real Lightning callback: counts the fits it takes part in (in FITS, since the
    backtest fits a clone of the estimator, callbacks copied)."""

    def on_fit_start(self, trainer, module):
        FITS.append(1)


@pytest.mark.parametrize("refit, fits", [(False, 1), (True, 4), (2, 2)])
def test_backtest_refits_every_cutoff_or_every_k(panel, refit, fits):
    FITS.clear()
    result = XLSTMForecaster(**SMALL, callbacks=[CountFits()]).backtest(panel, n_windows=4,
                                                                        refit=refit)
    assert len(FITS) == fits and result["cutoff"].nunique() == 4


@pytest.mark.parametrize("head", ["normal", "studentt"])
def test_distribution_heads_give_ordered_quantiles(panel, head):
    model = XLSTMForecaster(**SMALL, head=head, quantiles=(0.1, 0.5, 0.9)).fit(panel)
    out = model.predict()
    assert {"y_pred_q0.1", "y_pred_q0.5", "y_pred_q0.9"} <= set(out.columns)
    assert (out["y_pred_q0.1"] < out["y_pred_q0.5"]).all()
    assert (out["y_pred_q0.5"] < out["y_pred_q0.9"]).all()
    np.testing.assert_allclose(out["y_pred"], out["y_pred_q0.5"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("params", [{"loss": "mae"}, {"loss": "huber"},
                                    {"schedule": "onecycle"}])
def test_other_losses_and_schedules_train(panel, params):
    seen = {}

    class Record(Callback):  # what the trained module was built with
        def on_fit_start(self, trainer, module):
            seen.update(loss=module.net.head.loss_name, schedule=module.optim.schedule)

    model = XLSTMForecaster(**SMALL, **params, callbacks=[Record()]).fit(panel)
    assert seen == {"loss": "mae", "schedule": "cosine", **params}  # MAE, cosine: defaults
    history = model.loss_history_["train_loss"]
    assert len(history) == 1 and np.isfinite(history[0])
    assert np.isfinite(model.predict()["y_pred"]).all()


def test_past_covariates_drive_the_forecast_and_cannot_roll_forward(panel):
    frame = panel.assign(x=np.sin(np.arange(len(panel))))
    model = XLSTMForecaster(**SMALL, past_covariates=("x",)).fit(frame)
    assert model.config_.n_past == 1
    base = model.predict(df=frame)
    with pytest.raises(ValueError, match="past-only covariates cannot be rolled forward"):
        model.predict(horizon=12)
    import torch
    with torch.no_grad():
        model.network_.head.proj.weight.normal_()  # a correction that reads x
    assert not np.allclose(model.predict(df=frame)["y_pred"],
                           model.predict(df=frame.assign(x=0.0))["y_pred"])
    assert len(base) == 3 * 6


def test_static_features_for_new_series(panel):
    static = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "size": [1.0, 2.0, 3.0]})
    model = XLSTMForecaster(**SMALL).fit(panel, static_df=static)
    new = panel[panel.unique_id == "s0"].assign(unique_id="new")
    out = model.predict(df=new, static_df=pd.DataFrame({"unique_id": ["new"],
                                                        "size": [5.0]}))
    assert out["unique_id"].unique().tolist() == ["new"] and len(out) == 6
    with pytest.raises(ValueError, match="static"):
        model.predict(df=new)


@pytest.mark.parametrize("level", [0, 100, -5, 150])
def test_levels_outside_0_100_are_rejected(panel, level):
    model = XLSTMForecaster(**SMALL, head="quantile").fit(panel)
    with pytest.raises(ValueError, match="level"):
        model.predict(level=(level,))


def test_load_ettm1_reads_a_local_copy(tmp_path):
    times = pd.date_range("2016-07-01", periods=8, freq="15min")
    columns = ["HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT"]
    wide = pd.DataFrame({"date": times, **{c: np.arange(8.0) + k
                                           for k, c in enumerate(columns)}})
    wide.to_csv(tmp_path / "ETTm1.csv", index=False)
    long = datasets.load_ettm1(tmp_path / "ETTm1.csv")
    assert sorted(long.unique_id.unique()) == sorted(columns) and len(long) == 56
    assert long[long.unique_id == "OT"].y.tolist() == list(np.arange(8.0) + 6)
    assert long.ds.iloc[0] == times[0] and long.ds.iloc[-1] == times[-1]
    assert long.groupby("unique_id").ds.apply(lambda s: s.diff().dropna().eq(
        pd.Timedelta(minutes=15)).all()).all()


def test_tune_with_hyperband_parallel_jobs_and_maximize(panel):
    from xlstm_ts.tuning import tune

    space = {"d_model": {"type": "categorical", "choices": [8, 16]}}
    result = tune(panel, space, n_trials=2, pruner="hyperband", n_jobs=2,
                  direction="maximize", refit=False,
                  **{k: v for k, v in SMALL.items() if k != "d_model"})
    values = [t.value for t in result.study.trials if t.value is not None]
    assert len(result.study.trials) == 2 and result.best_score == max(values)
    assert result.study.direction.name == "MAXIMIZE" and result.forecaster is None


def test_cli_exits_1_on_unexpected_errors(panel, tmp_path, capsys):
    """A directory where the forecast file should go is no input error the CLI knows:
    exit 1, a one-line message pointing at --debug, no traceback."""
    from xlstm_ts.cli import main

    panel.to_csv(tmp_path / "d.csv", index=False)
    XLSTMForecaster(**SMALL).fit(panel).save(tmp_path / "model")
    (tmp_path / "out.csv").mkdir()
    code = main(["predict", "--model", str(tmp_path / "model"), "--input",
                 str(tmp_path / "d.csv"), "--output", str(tmp_path / "out.csv")])
    err = capsys.readouterr().err
    assert code == 1 and "unexpected" in err and "--debug" in err and "Traceback" not in err
