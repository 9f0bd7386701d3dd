"""Metrics on hand-checked numbers, frame evaluation, baselines and bundled datasets."""

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.exceptions import NotFittedError

from xlstm_ts import datasets
from xlstm_ts.evaluation import metrics
from xlstm_ts.evaluation.baselines import Drift, Naive, SeasonalNaive


def test_point_metrics_by_hand():
    y, p = [1.0, 2.0, 4.0], [1.0, 3.0, 2.0]
    assert metrics.mae(y, p) == pytest.approx(1.0)
    assert metrics.mse(y, p) == pytest.approx(5 / 3)
    assert metrics.rmse(y, p) == pytest.approx(np.sqrt(5 / 3))
    assert metrics.smape(y, p) == pytest.approx(100 * (0 + 2 / 5 + 4 / 6) / 3)
    assert metrics.smape([0.0], [0.0]) == 0.0
    # 0/0 entries count as 0 among others; small denominators (below 1) still count
    many_zeros = np.zeros(1000)
    assert metrics.smape(np.r_[many_zeros, 0.2], np.r_[many_zeros, 0.1]) == pytest.approx(
        100 * (0.2 / 0.3) / 1001)
    # MASE: in-sample seasonal (m=1) naive MAE of [1, 3, 2] is 1.5
    assert metrics.mase(y, p, [1.0, 3.0, 2.0], season=1) == pytest.approx(1.0 / 1.5)
    assert metrics.mae([1.0, np.nan], [2.0, 100.0]) == 1.0  # NaN truth ignored


def test_probabilistic_metrics_by_hand():
    y = [10.0]
    q = [[8.0, 10.0, 13.0]]
    levels = [0.1, 0.5, 0.9]
    # losses: 0.1*2, 0, (0.9-1)*(-3)=0.3 -> mean 0.5/3
    assert metrics.pinball_loss(y, q, levels) == pytest.approx(0.5 / 3)
    assert metrics.crps_from_quantiles(y, q, levels) == pytest.approx(1.0 / 3)
    assert metrics.coverage([1.0, 5.0, 9.0], [0.0, 6.0, 8.0], [2.0, 7.0, 10.0]) == \
        pytest.approx(2 / 3)
    assert metrics.interval_width([0.0, 1.0], [2.0, 5.0]) == 3.0
    with pytest.raises(ValueError, match="q_pred must have shape"):
        metrics.pinball_loss(y, [[1.0, 2.0]], levels)


def test_evaluate_per_series_and_aggregated():
    df = pd.DataFrame({"unique_id": ["a", "a", "b", "b"], "y": [1.0, 2.0, 3.0, 4.0],
                       "y_pred": [1.0, 4.0, 3.0, 3.0]})
    train = pd.DataFrame({"unique_id": ["a", "a", "a", "b", "b"], "y": [0.0, 1.0, 2.0, 0.0, 2.0]})
    per = metrics.evaluate(df, metrics=("mae", "mase"), train_df=train, per_series=True)
    assert isinstance(per, pd.DataFrame)
    assert per["mae"].tolist() == [1.0, 0.5] and per["mase"].tolist() == [1.0, 0.25]
    overall = metrics.evaluate(pl.from_pandas(df), metrics=("mae",))
    assert overall == {"mae": 0.75}
    with pytest.raises(ValueError, match="Unknown metrics"):
        metrics.evaluate(df, metrics=("mape",))
    with pytest.raises(ValueError, match="needs train_df"):
        metrics.evaluate(df, metrics=("mase",))


def test_evaluate_probabilistic_metrics_on_frames():
    df = pl.DataFrame({"unique_id": ["a", "a"], "y": [10.0, 0.0], "q10": [8.0, 1.0],
                       "q50": [10.0, 2.0], "q90": [13.0, 3.0]})
    scores = metrics.evaluate(df, metrics=("pinball", "crps", "coverage", "width"),
                              quantile_cols={0.1: "q10", 0.5: "q50", 0.9: "q90"},
                              interval_cols=("q10", "q90"))
    expected = metrics.pinball_loss([10.0, 0.0], [[8, 10, 13], [1, 2, 3]], [0.1, 0.5, 0.9])
    assert scores["pinball"] == pytest.approx(expected)
    assert scores["crps"] == pytest.approx(2 * expected)
    assert scores["coverage"] == 0.5 and scores["width"] == 3.5
    with pytest.raises(ValueError, match="need quantile_cols"):
        metrics.evaluate(df, metrics=("crps",))


def test_baselines_values_and_timestamps():
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2020-01-01", periods=6, freq="D"),
                       "y": [1.0, 2.0, 3.0, 10.0, 20.0, 30.0]})
    naive = Naive().fit(df).predict(4)
    assert naive["y_pred"].tolist() == [30.0] * 4
    assert naive["ds"].tolist() == list(pd.date_range("2020-01-07", periods=4, freq="D"))
    assert SeasonalNaive(3).fit(df).predict(4)["y_pred"].tolist() == [10.0, 20.0, 30.0, 10.0]
    assert Drift().fit(df).predict(2)["y_pred"].tolist() == [35.8, 41.6]
    polars_out = SeasonalNaive(3).fit(pl.from_pandas(df)).predict(2)
    assert isinstance(polars_out, pl.DataFrame)
    with pytest.raises(NotFittedError, match="This Naive instance is not fitted"):
        Naive().predict(3)
    single = pd.DataFrame({"unique_id": ["a", "b"], "ds": pd.to_datetime(["2020-01-01"] * 2),
                           "y": [1.0, 2.0]})
    with pytest.raises(ValueError, match="Cannot step time forward: every series has a "
                                         "single point"):
        Naive().fit(single).predict(1)
    with pytest.raises(ValueError, match="season_length"):
        SeasonalNaive(10).fit(df)


def test_seasonal_naive_beats_naive_on_seasonal_data():
    df = datasets.synthetic(4, 24 * 20, seasonalities=(24,), noise=0.05, trend=0.0, seed=3)
    train = df.groupby("unique_id").head(24 * 19)
    test = df.groupby("unique_id").tail(24)
    scores = {}
    for model in (Naive(), SeasonalNaive(24)):
        pred = model.fit(train).predict(24).merge(test, on=["unique_id", "ds"])
        scores[type(model).__name__] = metrics.evaluate(pred, metrics=("mae",))["mae"]
    assert scores["SeasonalNaive"] < 0.5 * scores["Naive"]


def test_bundled_datasets_load_as_long_frames():
    air = datasets.load_airline()
    assert air.shape == (144, 3) and list(air.columns) == ["unique_id", "ds", "y"]
    assert datasets.load_sunspots(frame="polars").shape == (3126, 3)
    ett = datasets.load_etth1(columns=["OT"])
    assert ett.shape == (17420, 3) and ett["y"].iloc[0] == pytest.approx(30.531)
    train, test = datasets.load_m4_hourly("train"), datasets.load_m4_hourly("test")
    assert train["unique_id"].nunique() == 414 and len(test) == 414 * 48
    last = train.groupby("unique_id")["ds"].max()
    first_test = test.groupby("unique_id")["ds"].min()
    assert (first_test == last + 1).all()


def test_synthetic_is_seeded_and_has_covariate_effect():
    a = datasets.synthetic(2, 50, covariate_effect=3.0, seed=7)
    b = datasets.synthetic(2, 50, covariate_effect=3.0, seed=7)
    pd.testing.assert_frame_equal(a, b)
    assert set(a.columns) == {"unique_id", "ds", "y", "x"}
    assert not a.equals(datasets.synthetic(2, 50, covariate_effect=3.0, seed=8))
    minutes = datasets.synthetic(1, 3, freq="15m")
    assert minutes.ds.diff().dropna().eq(pd.Timedelta(minutes=15)).all()
    with pytest.raises(ValueError, match=r"freq must be a polars duration.*'15min'"):
        datasets.synthetic(1, 3, freq="15min")  # pandas' alias


def test_mase_coverage_and_evaluate_edges():
    # MASE: the season is used, a train no longer than it is refused, a flat one is NaN
    train = [1.0, 5.0, 2.0, 6.0]
    assert metrics.mase([3.0], [4.0], train) == pytest.approx(3.0 / 11.0)  # season 1
    assert metrics.mase([3.0], [4.0], train, season=2) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="y_train needs more than season=4 values"):
        metrics.mase([1.0], [1.0], train, season=4)
    assert np.isnan(metrics.mase([1.0], [2.0], [3.0, 3.0, 3.0]))
    # coverage counts both bounds as inside
    assert metrics.coverage([0.0, 1.0], [0.0, 0.0], [1.0, 1.0]) == 1.0
    # evaluate passes the season on, and keeps the series' order
    df = pd.DataFrame({"unique_id": ["b", "b", "a", "a"], "y": [3.0, 4.0, 3.0, 4.0],
                       "y_pred": [4.0, 4.0, 4.0, 4.0]})
    history = pd.DataFrame({"unique_id": ["b"] * 4 + ["a"] * 4, "y": train * 2})
    per = metrics.evaluate(df, metrics=("mase",), train_df=history, season=2,
                           per_series=True)
    assert per["unique_id"].tolist() == ["b", "a"]
    assert per["mase"].tolist() == pytest.approx([0.5, 0.5])  # season 1 would give 1.5 / 11


def test_baselines_with_own_column_names_and_edge_lengths():
    df = pd.DataFrame({"shop": ["x"] * 7 + ["y"] * 3, "day": [0, 1, 2, 3, 4, 5, 6, 0, 1, 2],
                       "sales": [1.0, 2, 3, 4, 5, 6, 7, 10, 20, 30]})
    names = {"id_col": "shop", "time_col": "day", "target_col": "sales"}
    seasonal = SeasonalNaive(3, **names).fit(df).predict(4)
    assert list(seasonal.columns) == ["shop", "day", "y_pred"]
    # the last season of x is 5, 6, 7 (not 4, 5, 6); y is exactly one season long
    assert seasonal["y_pred"].tolist() == [5, 6, 7, 5, 10, 20, 30, 10]
    assert seasonal["day"].tolist() == [7, 8, 9, 10, 3, 4, 5, 6]
    with pytest.raises(ValueError, match=r"Series \['y'\] are shorter than season_length=4"):
        SeasonalNaive(4, **names).fit(df)
    single = pd.DataFrame({"shop": ["x", "y", "y"], "day": [0, 0, 1], "sales": [5.0, 1.0, 3.0]})
    drift = Drift(**names).fit(single.iloc[1:]).predict(2)
    assert drift["y_pred"].tolist() == [5.0, 7.0]
    with pytest.raises(ValueError, match="horizon"):
        Naive(**names).fit(df).predict(0)


def test_baseline_errors_name_the_fix():
    df = pd.DataFrame({"unique_id": ["a"] * 4, "ds": np.arange(4), "y": np.arange(4.0)})
    with pytest.raises(NotFittedError, match=r"not fitted yet. Call 'fit' with appropriate"):
        Naive().predict(2)
    with pytest.raises(ValueError, match=r"^horizon must be a positive int"):
        Naive().fit(df).predict(0)
    with pytest.raises(ValueError, match=r"^season_length must be a positive int"):
        SeasonalNaive(0).fit(df)
    six = pd.DataFrame({"unique_id": [f"s{j}" for j in range(6)], "ds": 0, "y": 1.0})
    with pytest.raises(ValueError, match=r"^Series \['s0', 's1', 's2', 's3', 's4'\] are"):
        SeasonalNaive(2).fit(six)  # the first five of the six are named


def test_drift_is_flat_for_a_one_point_series():
    df = pd.DataFrame({"unique_id": ["x", "y", "y"], "ds": [0, 0, 1], "y": [5.0, 1.0, 3.0]})
    drift = Drift().fit(df).predict(2)
    assert drift["y_pred"].tolist() == [5.0, 5.0, 5.0, 7.0]


def test_smape_counts_zero_over_zero_as_no_error():
    # 0 vs 0 is a perfect forecast; the rest: 2 * 1 / (1 + 2) = 2/3 -> mean (0 + 2/3) / 2
    big = np.zeros(10_000)  # large enough that uninitialised memory would show
    assert metrics.smape(big, big) == 0.0
    assert metrics.smape([0.0, 1.0], [0.0, 2.0]) == pytest.approx(100 * (2 / 3) / 2)


def test_pinball_loss_on_batched_shapes():
    t = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])  # (2, 3): batch, horizon
    q = np.stack([t - 1.0, t + 1.0], axis=-1)  # (2, 3, 2) at levels 0.1, 0.9
    # y - q = 1 at 0.1 -> 0.1; y - q = -1 at 0.9 -> 0.1
    assert metrics.pinball_loss(t, q, [0.1, 0.9]) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"Got \(2, 4, 2\) for y_true \(2, 3\)"):
        metrics.pinball_loss(t, np.zeros((2, 4, 2)), [0.1, 0.9])


@pytest.mark.parametrize("wanted, cols, match", [
    (("pinball",), {}, "need quantile_cols"),
    (("crps",), {}, "need quantile_cols"),
    (("coverage",), {}, "need interval_cols"),
    (("width",), {}, "need interval_cols"),
    (("mase",), {"drop": "y_pred"}, r"missing from df: \['y_pred'\]"),
    (("mae",), {"drop": "y_pred"}, r"missing from df: \['y_pred'\]"),
    (("pinball",), {"drop": "y", "quantile_cols": {0.5: "y_pred"}}, r"missing from df: \['y'\]"),
])
def test_evaluate_names_what_each_metric_needs(wanted, cols, match):
    df = pd.DataFrame({"unique_id": ["a", "a"], "y": [1.0, 2.0], "y_pred": [1.0, 1.0]})
    df = df.drop(columns=cols.pop("drop", []))
    history = pd.DataFrame({"unique_id": ["a"] * 3, "y": [1.0, 2.0, 4.0]})
    with pytest.raises(ValueError, match=match):
        metrics.evaluate(df, metrics=wanted, train_df=history, **cols)


def test_evaluate_names_a_bad_train_df():
    df = pd.DataFrame({"unique_id": ["a"], "y": [1.0], "y_pred": [1.0]})
    with pytest.raises(TypeError, match="train_df"):
        metrics.evaluate(df, metrics=("mase",), train_df=[1.0, 2.0])


def test_scaled_quantile_loss_by_hand():
    """Twice the pinball loss over levels and steps, per level, per unit of |y|."""
    y = np.array([[2.0, -4.0]])
    q = np.array([[[1.0, 3.0], [-5.0, -1.0]]])  # levels 0.25, 0.75 of two steps
    # step 1: y - q = (1, -1): 0.25 * 1 + (0.75 - 1) * -1 = 0.5
    # step 2: y - q = (1, -3): 0.25 * 1 + (0.75 - 1) * -3 = 1.0
    expected = 2 * (0.5 + 1.0) / 2 / 6.0
    assert metrics.scaled_quantile_loss(y, q, (0.25, 0.75)) == pytest.approx(expected)


def test_scaled_quantile_loss_of_a_point_forecast_is_its_wape():
    rng = np.random.default_rng(0)
    y = rng.normal(5, 2, (3, 7))
    point = y + rng.normal(0, 1, y.shape)
    levels = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    q = np.repeat(point[..., None], len(levels), -1)
    wape = np.abs(y - point).sum() / np.abs(y).sum()
    assert metrics.scaled_quantile_loss(y, q, levels) == pytest.approx(wape)


def test_scaled_quantile_loss_leaves_out_missing_actuals_and_checks_shapes():
    y = np.array([1.0, np.nan, 3.0])
    q = np.array([[0.5], [100.0], [3.0]])
    assert metrics.scaled_quantile_loss(y, q, (0.5,)) == pytest.approx(0.5 * 0.5 * 2 / 4.0)
    assert np.isnan(metrics.scaled_quantile_loss(np.zeros(2), np.zeros((2, 1)), (0.5,)))
    with pytest.raises(ValueError, match=r"q_pred must have shape y_true.shape \+ \(2,\)"):
        metrics.scaled_quantile_loss(y, q, (0.25, 0.75))


def test_missing_values_repeat_the_last_observed_one_of_their_series():
    from xlstm_ts.evaluation.baselines import _carried_forward

    nan = np.nan
    y = np.array([nan, 2.0, nan, 5.0, nan, 7.0, nan, nan])
    observed = ~np.isnan(y)
    indptr = np.array([0, 5, 8])  # two series: rows 0-4 and 5-7
    np.testing.assert_array_equal(_carried_forward(y, observed, indptr),
                                  [2.0, 2.0, 2.0, 5.0, 5.0, 7.0, 7.0, 7.0])
    full = np.arange(4.0)
    assert _carried_forward(full, np.ones(4, bool), np.array([0, 4])) is full
    with pytest.raises(ValueError, match="A series has no observed value"):
        _carried_forward(y, observed & (np.arange(8) < 5), indptr)


def test_baselines_forecast_across_gaps_from_the_last_observed_values():
    days = pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-05"])
    df = pd.DataFrame({"store": "a", "day": days, "sales": [1.0, 2.0, 3.0, 5.0]})
    kw = dict(id_col="store", time_col="day", target_col="sales", fill_missing="nan")
    # the grid 01-01 .. 01-05 with 01-04 missing: it repeats 3.0
    seasonal = SeasonalNaive(2, **kw).fit(df).predict(3)
    assert list(seasonal.columns) == ["store", "day", "y_pred"]
    np.testing.assert_array_equal(seasonal["y_pred"], [3.0, 5.0, 3.0])
    assert list(seasonal["day"].dt.day) == [6, 7, 8]
    np.testing.assert_array_equal(Naive(**kw).fit(df).predict(2)["y_pred"], [5.0, 5.0])
    with pytest.raises(ValueError, match="fill_missing"):
        SeasonalNaive(2, id_col="store", time_col="day", target_col="sales").fit(df)
