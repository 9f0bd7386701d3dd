"""Forecasting networks and heads: shapes, monotone quantiles, no leakage, learning."""

import pandas as pd
import pytest
import torch

from xlstm_ts import datasets
from xlstm_ts.data import WindowDataset, prepare_series, time_split_regions
from xlstm_ts.models import HEADS, NETWORKS, NetworkConfig, QuantileHead, build_network

L, H = 48, 12


@pytest.fixture(scope="module")
def panel():
    df = datasets.synthetic(3, 300, seasonalities=(24,), covariate_effect=1.5, seed=4)
    static = pd.DataFrame({"unique_id": ["s0", "s1", "s2"], "kind": ["a", "b", "a"]})
    return prepare_series(df, future_covariates=["x"], calendar=["hour"], static_df=static)


def config(panel, **kw):
    base = {"lookback": L, "horizon": H, "d_model": 16, "num_blocks": 2, "num_heads": 2,
            "patch_len": 8, "patch_stride": 4, "n_future": panel.future.shape[1],
            "n_static": panel.static.shape[1], "dropout": 0.0}
    if kw.get("network") == "mixer":  # the 3 series as channels, read from past inputs
        base.update(n_past=3, n_channels=3)
    return NetworkConfig(**{**base, **kw})


def windows(panel, rows, network):
    """Training windows; for the mixer with the channels' values as past inputs."""
    batch = WindowDataset(panel, L, H)[rows]
    if network == "mixer":
        g = torch.Generator().manual_seed(len(rows))
        batch["past"] = torch.randn(len(rows), L, 3, generator=g)
    return batch


@pytest.mark.parametrize("head", HEADS)
@pytest.mark.parametrize("network", NETWORKS)
def test_shapes_and_gradients(panel, network, head):
    torch.manual_seed(0)
    model = build_network(config(panel, network=network, head=head))
    batch = windows(panel, [0, 5, 300], network)
    params, stats = model(batch)
    assert params.shape[:2] == (3, H)
    loss = model.head.loss(params, model.normalize_target(batch["target"], stats),
                           batch["target_mask"])
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    point = model.denormalize(model.head.point(params), stats)
    assert point.shape == (3, H) and torch.isfinite(point).all()
    if head != "point":
        q = model.denormalize(model.head.quantiles(params, [0.1, 0.5, 0.9]), stats)
        assert q.shape == (3, H, 3)
        assert (q[..., 1:] >= q[..., :-1] - 1e-5).all()


def test_quantile_head_is_monotone_for_any_input():
    head = QuantileHead(8, 5, [0.9, 0.1, 0.5, 0.25])
    q = head(torch.randn(64, 8) * 100)
    assert (q[..., 1:] >= q[..., :-1]).all()
    with pytest.raises(ValueError, match=r"quantiles must be distinct values in \(0, 1\)"):
        QuantileHead(8, 5, [0.5, 1.0])


@pytest.mark.parametrize("network", NETWORKS)
def test_outputs_ignore_the_horizon_target(panel, network):
    model = build_network(config(panel, network=network)).eval()
    batch = windows(panel, [3, 40], network)
    altered = dict(batch, target=batch["target"] + 100.0)
    torch.testing.assert_close(model(batch)[0], model(altered)[0])


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("scale, shift", [(3.0, 10.0), (1e-9, 0.0), (1e-4, 5e-3), (1e6, 0.0)])
def test_point_forecast_follows_the_scale_of_the_history(panel, network, scale, shift):
    """RevIN: shifting and scaling the history shifts and scales the forecast, in any
    units (an absolute std floor flattened series of amplitude 1e-9 to their mean)."""
    model = build_network(config(panel, network=network)).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # away from the zero-initialised outputs (the window's mean)
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    batch = windows(panel, [7, 70], network)
    params, stats = model(batch)
    base = model.denormalize(model.head.point(params), stats)
    moved = dict(batch, history=batch["history"] * scale + shift)
    params, stats = model(moved)
    forecast = model.denormalize(model.head.point(params), stats)
    torch.testing.assert_close((forecast - shift) / scale, base, atol=1e-3, rtol=1e-3)


def test_patch_network_learns_to_beat_seasonal_naive():
    df = datasets.synthetic(6, 24 * 25, seasonalities=(24, 168), noise=0.3, seed=2)
    data = prepare_series(df, calendar=["hour", "dayofweek"])
    regions = time_split_regions(data, 0, 24)
    cfg = NetworkConfig(lookback=168, horizon=24, d_model=32, n_future=2, patch_len=24,
                        patch_stride=12, dropout=0.0)
    torch.manual_seed(0)
    model = build_network(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    train = WindowDataset(data, 168, 24, region=regions["train"])
    g = torch.Generator().manual_seed(0)
    for _ in range(120):
        batch = train[torch.randint(len(train), (64,), generator=g).tolist()]
        params, stats = model(batch)
        loss = model.head.loss(params, model.normalize_target(batch["target"], stats))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    test = WindowDataset(data, 168, 24, region=regions["test"])
    batch = test[list(range(len(test)))]
    with torch.no_grad():
        params, stats = model.eval()(batch)
        pred = model.denormalize(model.head.point(params), stats)
    mae = (pred - batch["target"]).abs().mean()
    seasonal_naive = (batch["history"][:, -24:] - batch["target"]).abs().mean()
    assert mae < 0.6 * seasonal_naive


@pytest.mark.parametrize("kwargs, match", [
    ({"network": "transformer"}, "network must be one of"),
    ({"head": "gamma"}, "head must be one of"),
    ({"lookback": 4}, r"lookback \(4\) must be at least patch_len \(8\)"),
    ({"horizon": -3}, "horizon must be a positive int"),
    ({"head": "point", "loss": "mape"}, "loss must be one of"),
])
def test_invalid_configuration(panel, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_network(config(panel, **kwargs))


@pytest.mark.parametrize("network", NETWORKS)
def test_future_covariates_act_step_by_step_and_old_configs_read_them_dense(panel, network):
    """The local path: zero at the start (training begins at the linear forecast, not
    moved by the covariates), then a change of the covariates at one horizon step moves
    that step and its two neighbours only. A config saved before the path existed
    builds the dense head it was trained with."""
    torch.manual_seed(0)
    model = build_network(config(panel, network=network)).eval()
    batch = windows(panel, [3, 40], network)
    moved = dict(batch, future=batch["future"].clone())
    moved["future"][:, L + 5] += 10.0  # horizon step 5
    assert torch.equal(model(batch)[0], model(moved)[0])
    with torch.no_grad():
        model.ahead.weight.normal_()
    change = (model(moved)[0] - model(batch)[0]).abs().amax(0)  # (H,)
    assert change[[4, 5, 6]].min() > 0 and change[[0, 1, 2, 3, 7, 8, 9, 10, 11]].max() == 0
    saved = {k: getattr(config(panel, network=network), k) for k in ("lookback", "horizon",
             "network", "d_model", "num_heads", "patch_len", "patch_stride", "n_future",
             "n_static", "n_past", "n_channels")}
    old = build_network(NetworkConfig.from_dict(saved))
    assert old.config.future_path == "dense" and old.ahead is None
    assert old.head.proj.in_features == model.head.proj.in_features + H * panel.future.shape[1]
    assert old(batch)[0].shape == model(batch)[0].shape
