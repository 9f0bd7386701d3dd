"""xlstm_ts/training/blend.py: the blend of the trained network with its linear
start, its validation errors and the choice of share."""


import numpy as np
import pandas as pd
import pytest
import torch

from xlstm_ts.models import NetworkConfig, build_network


@pytest.mark.parametrize("network", ["patch", "xlstmtime"])
@pytest.mark.parametrize("weight", [0.0, 0.25, 0.75, 1.0])
def test_folded_blend_forecasts_the_blend_of_trained_and_start(network, weight, random_batch):
    from xlstm_ts.training.blend import fold_blend
    config = NetworkConfig(lookback=32, horizon=8, network=network, d_model=8, num_heads=2,
                           patch_len=8, patch_stride=4)
    torch.manual_seed(0)
    start = build_network(config).eval()
    with torch.no_grad():
        start.linear.weight.normal_(0, 0.1)
        trained = build_network(config).eval()
        trained.load_state_dict(start.state_dict())
        for p in trained.parameters():  # "training" moved every weight
            p.add_(torch.randn_like(p) * 0.1)
    batch = random_batch()
    expected = weight * trained(batch)[0] + (1 - weight) * start(batch)[0]
    assert not torch.allclose(trained(batch)[0], start(batch)[0])
    fold_blend(trained, start, weight)
    torch.testing.assert_close(trained(batch)[0], expected)


def test_blend_validation_errors_are_those_of_the_blended_forecasts():
    from xlstm_ts.data import WindowDataset, prepare_series
    from xlstm_ts.training.blend import blend_val_mse
    config = NetworkConfig(lookback=16, horizon=4, d_model=8, num_heads=2, patch_len=8,
                           patch_stride=4)
    torch.manual_seed(1)
    start = build_network(config).eval()
    trained = build_network(config).eval()
    with torch.no_grad():
        for p in trained.parameters():
            p.normal_(0, 0.1)
    t = np.arange(60, dtype=float)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 60), "ds": np.tile(np.arange(60), 2),
                       "y": np.concatenate([np.sin(t / 3), 5 + 2 * np.cos(t / 5)])})
    data = prepare_series(df)
    val = WindowDataset(data, 16, 4)
    variance = torch.tensor([0.5, 2.0], dtype=torch.float64)
    errors = blend_val_mse(trained, start, val, variance, (0.0, 0.5, 1.0))
    batch = val[np.arange(len(val))]
    (p1, stats), (p0, _) = trained(batch), start(batch)
    target = trained.normalize_target(batch["target"], stats)
    scale = stats[1][:, 0, 0].double() ** 2 / variance[batch["series"]]
    for w, got in zip((0.0, 0.5, 1.0), errors, strict=True):
        err = ((w * p1 + (1 - w) * p0 - target).double() ** 2).sum(-1) * scale
        assert got == pytest.approx(float(err.sum()) / target.numel(), rel=1e-6)
    assert len(set(errors)) == 3


def test_the_blend_choice_keeps_the_network_only_when_it_earns_it():
    """Issue 48, item 6: the keep/blend decision both ways, ties to the start."""
    from xlstm_ts.training.blend import BLEND_WEIGHTS, choose_blend

    assert choose_blend(BLEND_WEIGHTS, [1.0, 0.9, 0.8, 0.7, 0.6]) == 1.0  # the network kept
    assert choose_blend(BLEND_WEIGHTS, [0.6, 0.7, 0.8, 0.9, 1.0]) == 0.0  # the start kept
    assert choose_blend(BLEND_WEIGHTS, [1.0, 0.5, 0.7, 0.5, 0.9]) == 0.25  # ties: less network
    assert choose_blend(BLEND_WEIGHTS, [0.5] * 5) == 0.0
    assert choose_blend(BLEND_WEIGHTS, [float("nan"), 0.9, float("nan"), 0.8, 2.0]) == 0.75
    assert choose_blend(BLEND_WEIGHTS, [float("inf")] * 5) == 0.0  # no windows: the start


def test_only_a_point_head_on_fixed_units_takes_the_shares_between_the_ends():
    from xlstm_ts.training.blend import BLEND_WEIGHTS, blend_weights

    base = dict(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8, patch_stride=8)
    assert blend_weights(build_network(NetworkConfig(**base))) == BLEND_WEIGHTS
    for other in ({"head": "quantile"}, {"head": "normal"}, {"revin_affine": True}):
        assert blend_weights(build_network(NetworkConfig(**base, **other))) == (0.0, 1.0)


def test_the_start_takes_the_trained_covariate_effect_and_nothing_else():
    from xlstm_ts.training.blend import keep_covariate_effect

    config = NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8,
                           patch_stride=8, n_future=2)
    trained, start = build_network(config), build_network(config)
    with torch.no_grad():
        trained.ahead.weight.normal_()
        trained.ahead.bias.fill_(0.5)
    linear_before = start.linear.weight.clone()
    keep_covariate_effect(trained, start)
    torch.testing.assert_close(start.ahead.weight, trained.ahead.weight)
    torch.testing.assert_close(start.ahead.bias, trained.ahead.bias)
    torch.testing.assert_close(start.linear.weight, linear_before)
    plain = NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8,
                          patch_stride=8)
    keep_covariate_effect(build_network(plain), build_network(plain))  # none: a no-op
