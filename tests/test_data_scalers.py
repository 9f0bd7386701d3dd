"""Per-series scalers and RevIN."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from xlstm_ts.data import SeriesScaler
from xlstm_ts.models import RevIN

METHODS = ["standard", "robust", "minmax", "none"]


def flat(series_list):
    lengths = [len(s) for s in series_list]
    values = torch.tensor(np.concatenate(series_list), dtype=torch.float64)
    indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    rows = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
    return values, indptr, rows


@settings(max_examples=50, deadline=None)
@given(series=st.lists(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30), min_size=1,
                       max_size=5), method=st.sampled_from(METHODS))
def test_round_trip_and_no_nan(series, method):
    values, indptr, rows = flat([np.array(s) for s in series])
    scaler = SeriesScaler(method).fit(values, indptr)
    scaled = scaler.transform(values, rows)
    assert torch.isfinite(scaled).all()
    torch.testing.assert_close(scaler.inverse_transform(scaled, rows), values,
                               rtol=1e-12, atol=1e-9)


def test_statistics_per_method():
    a, b = np.array([1.0, 2, 3, 4, 100]), np.array([5.0, 5, 5])
    values, indptr, _ = flat([a, b])
    std = SeriesScaler("standard").fit(values, indptr)
    assert std.loc_.tolist() == [a.mean(), 5.0] and std.scale_.tolist() == [a.std(), 1.0]
    rob = SeriesScaler("robust").fit(values, indptr)
    q1, q2, q3 = np.quantile(a, [0.25, 0.5, 0.75])
    assert rob.loc_.tolist() == [q2, 5.0] and rob.scale_.tolist() == [q3 - q1, 1.0]
    mm = SeriesScaler("minmax").fit(values, indptr)
    assert mm.loc_.tolist() == [1.0, 5.0] and mm.scale_.tolist() == [99.0, 1.0]


def test_fit_uses_training_rows_only():
    values, indptr, _ = flat([np.array([1.0, 2, 3, 1000, 2000]), np.array([4.0, 6, 9])])
    scaler = SeriesScaler("standard").fit(values, indptr, end=np.array([3, 2]))
    assert scaler.loc_.tolist() == [2.0, 5.0]
    masked = SeriesScaler("standard").fit(values, indptr,
                                          observed=torch.tensor([1, 1, 1, 0, 0, 1, 1, 0]).bool())
    assert masked.loc_.tolist() == [2.0, 5.0]


def test_unfitted_and_unknown_method_raise():
    with pytest.raises(NotFittedError, match="not fitted"):
        SeriesScaler().transform(torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="scaler must be one of"):
        SeriesScaler("log").fit(torch.zeros(2), np.array([0, 2]))


def test_revin_round_trip_with_mask():
    revin = RevIN(num_features=2)
    x = torch.randn(4, 10, 2) * 5 + 3
    mask = torch.ones(4, 10, dtype=torch.bool)
    mask[:, :3] = False
    y, stats = revin.normalize(x, mask)
    assert torch.all(y[:, :3] == 0)
    obs = y[:, 3:]
    torch.testing.assert_close(obs.mean(1), torch.zeros(4, 2), atol=1e-5, rtol=0)
    back = revin.denormalize(y, stats)
    torch.testing.assert_close(back[:, 3:], x[:, 3:], atol=1e-4, rtol=1e-4)


def test_revin_constant_and_zero_windows_normalise_to_zero():
    """The std floor is relative to the window's magnitude: a constant window (whose
    float32 mean is off by round-off) and an all-zero one come out as zeros, finite."""
    revin = RevIN(num_features=1, affine=False)
    x = torch.stack([torch.full((512, 1), 5.1), torch.zeros(512, 1), torch.full((512, 1), 3e-12)])
    y, (mean, std) = revin.normalize(x)
    assert torch.isfinite(y).all() and y.abs().max() < 0.1
    assert (std > 0).all() and std[0].item() == pytest.approx(5.1e-5, rel=1e-3)
    torch.testing.assert_close(revin.denormalize(torch.zeros(3, 4, 1), (mean, std)),
                               x[:, :4], rtol=1e-6, atol=0)


@pytest.mark.parametrize("method", METHODS)
def test_rows_used_are_observed_and_before_end_and_empty_series_are_identity(method):
    # series 0: only rows 0 and 2 are both observed and before end=3; series 1: none
    values, indptr, _ = flat([np.array([1.0, 50, 3, 7, 9]), np.array([4.0, 6])])
    observed = torch.tensor([1, 0, 1, 1, 1, 0, 0]).bool()
    scaler = SeriesScaler(method).fit(values, indptr, observed=observed, end=3)
    expected = {"standard": (2.0, 1.0), "robust": (2.0, 1.0), "minmax": (1.0, 2.0),
                "none": (0.0, 1.0)}[method]
    assert scaler.loc_.tolist() == [expected[0], 0.0]
    assert scaler.scale_.tolist() == [expected[1], 1.0]


def test_default_method_is_standard():
    values, indptr, _ = flat([np.array([1.0, 3.0])])
    scaler = SeriesScaler().fit(values, indptr)
    assert scaler.method == "standard"
    assert scaler.loc_.tolist() == [2.0] and scaler.scale_.tolist() == [1.0]


def test_covariate_moments_standardise_user_columns_only():
    from xlstm_ts import datasets
    from xlstm_ts.data import covariate_moments, prepare_series

    df = datasets.synthetic(2, 48, covariate_effect=1.0, seed=0)
    df["price"], df["flat"] = 1000.0 + np.arange(96) % 3, 7.0
    data = prepare_series(df, future_covariates=("x",), past_covariates=("price", "flat"),
                          calendar=("hour",))
    moments = covariate_moments(data)
    loc, scale = moments["past"]
    np.testing.assert_allclose(loc, [1001.0, 7.0], rtol=1e-6)  # 1000 + 0, 1, 2 cycling
    np.testing.assert_allclose(scale[0], np.std(np.arange(96) % 3), rtol=1e-5)
    assert scale[1] == 1.0  # a constant column becomes 0, not a division by zero
    loc, scale = moments["future"]  # x, then the calendar column kept as generated
    assert data.columns.future == ("x", "cal_hour")
    np.testing.assert_allclose(loc[0], df.x.mean(), rtol=1e-5)
    assert (loc[1].item(), scale[1].item()) == (0.0, 1.0)
    assert moments["static"][0].shape == (0,)

