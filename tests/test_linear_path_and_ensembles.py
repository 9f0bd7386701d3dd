"""The networks' linear path and ensembles (xlstm_ts/models): the forecast starts at
the linear map, an ensemble is its members' median, and the mixer network mixes
channels."""


import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts import XLSTMForecaster
from xlstm_ts.models import Ensemble, NetworkConfig, build_network


@pytest.mark.parametrize("network", ["patch", "xlstmtime"])
@pytest.mark.parametrize("head", ["point", "quantile", "normal"])
def test_linear_path_starts_at_the_linear_forecast(network, head, random_batch):
    config = NetworkConfig(lookback=32, horizon=8, network=network, d_model=8, num_heads=2,
                           patch_len=8, patch_stride=4, head=head)
    net = build_network(config)
    with torch.no_grad():  # a non-trivial linear map, so the check is not 0 == 0
        net.linear.weight.normal_()
        net.linear.bias.normal_()
    batch = random_batch()
    params, (mean, std) = net(batch)
    window = (batch["history"].unsqueeze(-1) - mean) / std
    expected = net.linear(window[..., 0])
    point = net.head.point(params)
    if head == "quantile":  # quantiles start evenly spread around the linear forecast
        point = params[..., 0]
    torch.testing.assert_close(point, expected)
    forecast = net.denormalize(net.head.point(params), (mean, std))
    if head == "point":
        torch.testing.assert_close(forecast, expected * std[..., 0] + mean[..., 0])


def test_without_linear_path_there_is_none():
    net = build_network(NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2,
                                      patch_len=8, patch_stride=4, linear_path=False))
    assert net.linear is None


@pytest.mark.parametrize("head", ["point", "quantile"])
def test_ensemble_is_the_median_of_its_members(head, random_batch):
    config = NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8,
                           patch_stride=4, head=head, n_models=3)
    torch.manual_seed(0)
    ensemble = build_network(config).eval()  # no dropout: the same members twice
    assert isinstance(ensemble, Ensemble) and len(ensemble.members) == 3
    for member in ensemble.members:  # leave the zero start, so members differ
        for p in member.parameters():
            p.data.normal_(0, 0.3)
    batch = random_batch()
    params, _ = ensemble(batch)
    members = torch.stack([m(batch)[0] for m in ensemble.members])
    torch.testing.assert_close(params, members.median(dim=0).values)
    if head == "quantile":
        assert (params.diff(dim=-1) >= 0).all()  # medians of increasing levels increase


def test_forecaster_ensemble_point_is_the_median_of_member_forecasts(tmp_path):
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=200, freq="h")
    df = pd.concat([pd.DataFrame({"unique_id": f"s{j}", "ds": times,
                                  "y": np.sin(np.arange(200) * 2 * np.pi / 24) * (j + 1)
                                  + 0.1 * rng.standard_normal(200)}) for j in range(3)])
    params = {"lookback": 48, "horizon": 12, "d_model": 8, "num_heads": 2, "max_epochs": 2,
              "batches_per_epoch": 5, "progress_bar": False, "random_state": 3}
    model = XLSTMForecaster(**params, n_models=3).fit(df)
    assert len(model.member_loss_histories_) == 3
    assert len(model.correction_share_) == 3
    assert all(share in (0.0, 0.25, 0.5, 0.75, 1.0) for share in model.correction_share_)
    members = []
    for k, net in enumerate(model.network_.members):
        single = XLSTMForecaster(**{**params, "random_state": 3 + k}).fit(df)
        for a, b in zip(single.network_.state_dict().values(), net.state_dict().values(),
                        strict=True):
            torch.testing.assert_close(a, b)  # member k is the single model of seed 3 + k
        members.append(single.predict()["y_pred"].to_numpy())
    np.testing.assert_allclose(model.predict()["y_pred"], np.median(members, axis=0),
                               rtol=1e-5, atol=1e-5)
    model.save(tmp_path / "m")
    pd.testing.assert_frame_equal(XLSTMForecaster.load(tmp_path / "m").predict(),
                                  model.predict())


def _channels(n_steps: int = 600, seed: int = 0) -> pd.DataFrame:
    """Three hourly channels sharing their timestamps; c2 is c0 three steps later, so
    the other channels know c2's next values."""
    rng = np.random.default_rng(seed)
    t = pd.date_range("2024-01-01", periods=n_steps, freq="h")
    driver = np.cumsum(rng.normal(0, 1, n_steps + 3))
    values = {"c0": driver[3:], "c1": rng.normal(0, 1, n_steps), "c2": driver[:-3]}
    return pd.concat([pd.DataFrame({"unique_id": k, "ds": t, "y": v})
                      for k, v in values.items()], ignore_index=True)


def test_mixer_network_mixes_channels_and_keeps_its_series(random_batch):
    from xlstm_ts.models import MixerXLSTM

    df = _channels()
    model = XLSTMForecaster(network="mixer", horizon=6, lookback=48, d_model=8, num_heads=2,
                            max_epochs=1, batches_per_epoch=2, progress_bar=False,
                            random_state=0).fit(df)
    assert isinstance(model.network_, MixerXLSTM) and model.config_.n_channels == 3
    forecast = model.predict()
    pd.testing.assert_frame_equal(forecast, model.predict(df=df))
    # the network: a window's forecast depends on the other channels at its times
    net = build_network(model.config_).eval()
    with torch.no_grad():
        net.head.proj.weight.normal_()
    batch = {**random_batch(B=3, L=48, H=6), "past": torch.randn(3, 48, 3),
             "series": torch.tensor([0, 1, 2])}
    moved = {**batch, "past": batch["past"].clone()}
    moved["past"][0, :, 1] += torch.linspace(0, 5, 48)  # window 0's channel 1 only
    before, after = net(batch)[0], net(moved)[0]
    assert not torch.allclose(before[0], after[0]) and torch.equal(before[1:], after[1:])
    with pytest.raises(ValueError, match=r"lacks fitted series \['c1'\]"):
        model.predict(df=df[df.unique_id != "c1"])
    other = df.assign(unique_id=df.unique_id.str.replace("c2", "z"))
    with pytest.raises(ValueError, match=r"series it was not fitted on: \['z'\]"):
        model.predict(df=other)
    with pytest.raises(ValueError, match="same timestamps"):
        XLSTMForecaster(network="mixer", horizon=6, lookback=48).fit(df.iloc[5:])
