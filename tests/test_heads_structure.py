"""The heads' construction, parameter maps and masking, on shapes where a wrong axis,
a dropped mask or a lost offset changes the numbers (issue 20: mutation survivors)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F_
from scipy.stats import t as student_t

from xlstm_ts.models import DistributionHead, PointHead, QuantileHead
from xlstm_ts.models.heads import build_head


def _set_bias(head: torch.nn.Module, bias: torch.Tensor) -> None:
    """Zero weights and the given bias: the head's raw output is ``bias`` for any z."""
    with torch.no_grad():
        head.proj.weight.zero_()
        head.proj.bias.copy_(bias.reshape(-1))


def test_point_head_maps_features_to_the_horizon_and_adds_the_base():
    head = PointHead(3, 4, "mae")
    assert head.loss_name == "mae"
    assert (head.proj.in_features, head.proj.out_features) == (3, 4)
    _set_bias(head, torch.arange(4.0))
    base = torch.full((2, 4), 10.0)
    z = torch.randn(2, 3)
    torch.testing.assert_close(head(z), torch.arange(4.0).expand(2, 4))
    torch.testing.assert_close(head(z, base), 10.0 + torch.arange(4.0).expand(2, 4))
    torch.testing.assert_close(head.point(head(z)), head(z))
    with pytest.raises(ValueError, match=r"loss must be one of \['mse', 'mae', 'huber'\]"):
        PointHead(3, 4, "mape")
    with pytest.raises(ValueError, match=r"^A point head has no quantiles; use head='quantile'"):
        head.quantiles(head(z), [0.5])


def test_point_losses_follow_the_mask_on_several_rows():
    params = torch.tensor([[0.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[3.0, 1.0], [0.5, 2.0]], dtype=torch.float64)
    mask = torch.tensor([[True, False], [True, True]])
    assert PointHead(1, 2, "mse").loss(params, target, mask).item() == pytest.approx(
        (9.0 + 0.25 + 4.0) / 3)
    assert PointHead(1, 2, "mae").loss(params, target).item() == pytest.approx(6.5 / 4)
    # Huber's delta is 1: 3 -> 2.5, 0.5 -> 0.125, 2 -> 1.5
    assert PointHead(1, 2, "huber").loss(params, target, mask).item() == pytest.approx(
        (2.5 + 0.125 + 1.5) / 3)
    assert PointHead(1, 2, "huber").loss(params, target, mask).item() == pytest.approx(
        F_.huber_loss(params, target, reduction="none", delta=1.0)[mask].mean().item())


def test_a_fully_masked_batch_has_zero_loss_not_nan():
    params = torch.ones(2, 3)
    target = torch.zeros(2, 3)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for head in (PointHead(1, 3), QuantileHead(1, 3, (0.5,))):
        p = params if isinstance(head, PointHead) else params.unsqueeze(-1)
        assert head.loss(p, target, mask).item() == 0.0


def test_quantile_head_levels_are_sorted_checked_and_not_saved():
    head = QuantileHead(5, 3, (0.9, 0.1, 0.5))
    assert head.levels.tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert head.horizon == 3
    assert (head.proj.in_features, head.proj.out_features) == (5, 9)
    assert "levels" not in head.state_dict()  # rebuilt from the config on load
    for bad in [(), (0.0, 0.5), (0.5, 1.0), (0.2, 0.2), (-0.1,), (1.5,)]:
        with pytest.raises(ValueError, match=r"quantiles must be distinct values in \(0, 1\)"):
            QuantileHead(5, 3, bad)


def test_quantile_head_builds_increasing_quantiles_from_softplus_steps():
    head = QuantileHead(2, 2, (0.1, 0.5, 0.9))
    raw = torch.tensor([[1.0, -1.0, 2.0], [-3.0, 0.0, -5.0]])  # (H, Q)
    _set_bias(head, raw)
    out = head(torch.zeros(4, 2))  # (B, H, Q)
    assert out.shape == (4, 2, 3)
    lowest = raw[:, 0]
    second = lowest + F_.softplus(raw[:, 1])
    third = second + F_.softplus(raw[:, 2])
    expected = torch.stack([lowest, second, third], dim=-1)
    torch.testing.assert_close(out[0], expected)
    base = torch.tensor([[10.0, 20.0]]).expand(4, 2)
    torch.testing.assert_close(head(torch.zeros(4, 2), base)[0],
                               expected + torch.tensor([[10.0], [20.0]]))


def test_pinball_loss_on_several_rows_steps_and_a_mask():
    head = QuantileHead(1, 3, (0.1, 0.9)).double()
    params = torch.zeros(2, 3, 2, dtype=torch.float64)
    target = torch.tensor([[1.0, -1.0, 2.0], [0.0, 3.0, -2.0]], dtype=torch.float64)
    mask = torch.tensor([[True, True, False], [True, False, True]])
    # per (b, h): 0.1 * y + 0.9 * y for y >= 0, else 0.9 * |y| + 0.1 * |y|: |y| / 2 averaged
    # over the two levels; the mean runs over unmasked (b, h, q) entries
    kept = torch.tensor([1.0, 1.0, 0.0, 2.0], dtype=torch.float64)
    expected = (kept.sum() * 1.0 / 2).item() / len(kept)
    got = head.loss(params, target, mask).item()
    assert got == pytest.approx(expected, rel=1e-6)
    unmasked = target.abs().mean().item() / 2
    assert head.loss(params, target).item() == pytest.approx(unmasked, rel=1e-6)


def test_quantile_interpolation_on_uneven_levels_and_a_single_level():
    head = QuantileHead(1, 1, (0.2, 0.4, 0.9))
    params = torch.tensor([[[0.0, 2.0, 12.0]]])
    got = head.quantiles(params, [0.2, 0.3, 0.4, 0.65, 0.9, 0.01, 0.99])[0, 0]
    torch.testing.assert_close(got, torch.tensor([0.0, 1.0, 2.0, 7.0, 12.0, 0.0, 12.0]))
    assert head.point(params).item() == pytest.approx(2.0 + 10.0 * 0.1 / 0.5)
    single = QuantileHead(1, 2, (0.5,))
    params = torch.tensor([[[3.0], [4.0]]])
    torch.testing.assert_close(single.quantiles(params, [0.1, 0.5, 0.9]),
                               torch.tensor([[[3.0] * 3, [4.0] * 3]]))
    torch.testing.assert_close(single.point(params), torch.tensor([[3.0, 4.0]]))


def test_distribution_head_maps_raw_outputs_to_loc_scale_and_df():
    for family, n in (("normal", 2), ("studentt", 3)):
        head = DistributionHead(4, 2, family, min_scale=0.25)
        assert (head.family, head.horizon, head.min_scale, head.n_params) == (
            family, 2, 0.25, n)
        assert head.proj.out_features == 2 * n
        raw = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 3.0, -4.0]])[:, :n]  # (H, n)
        _set_bias(head, raw)
        out = head(torch.zeros(3, 4))
        assert out.shape == (3, 2, n)
        torch.testing.assert_close(out[1, :, 0], raw[:, 0])
        torch.testing.assert_close(out[1, :, 1], F_.softplus(raw[:, 1]) + 0.25)
        if family == "studentt":
            torch.testing.assert_close(out[1, :, 2], 2.0 + F_.softplus(raw[:, 2]))
        base = torch.tensor([[5.0, 6.0]]).expand(3, 2)
        shifted = head(torch.zeros(3, 4), base)
        torch.testing.assert_close(shifted[..., 0], out[..., 0] + base)
        torch.testing.assert_close(shifted[..., 1:], out[..., 1:])
    assert DistributionHead(4, 2).family == "normal"
    assert DistributionHead(4, 2).min_scale == 1e-3
    with pytest.raises(ValueError, match=r"family must be one of \['normal', 'studentt'\]"):
        DistributionHead(4, 2, "laplace")


def test_distribution_nll_follows_the_mask():
    head = DistributionHead(1, 2, "normal")
    params = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    target = torch.tensor([[0.0, 3.0]])
    only_first = torch.tensor([[True, False]])
    assert head.loss(params, target, only_first).item() == pytest.approx(
        0.5 * np.log(2 * np.pi))
    assert head.loss(params, target).item() == pytest.approx(
        0.5 * np.log(2 * np.pi) + 9.0 / 4)


def test_student_t_quantiles_are_scipys_per_step():
    head = DistributionHead(1, 2, "studentt")
    params = torch.tensor([[[1.0, 2.0, 3.0], [-1.0, 0.5, 30.0]]], dtype=torch.float64)
    levels = [0.05, 0.5, 0.8]
    got = head.quantiles(params, levels)[0].numpy()
    expected = np.stack([1.0 + 2.0 * student_t.ppf(levels, 3.0),
                         -1.0 + 0.5 * student_t.ppf(levels, 30.0)])
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    torch.testing.assert_close(head.point(params), params[..., 0])
    draws = head.sample(params, 5)
    assert draws.shape == (5, 1, 2)


def test_build_head_kinds():
    assert isinstance(build_head("point", 3, 2, loss="huber"), PointHead)
    assert build_head("point", 3, 2).loss_name == "mse"  # the building block's default
    assert build_head("point", 3, 2, loss="huber").loss_name == "huber"
    q = build_head("quantile", 3, 2, quantiles=(0.25, 0.75))
    assert q.levels.tolist() == [0.25, 0.75]
    assert build_head("quantile", 3, 2).levels.tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert build_head("studentt", 3, 2).family == "studentt"
    assert build_head("normal", 3, 2).n_params == 2
    with pytest.raises(ValueError, match=r"head must be one of \['point', 'quantile'"):
        build_head("mixture", 3, 2)


def test_quantile_interpolation_weights_in_the_params_dtype():
    """In float64 the wanted levels stay float64 (0.3, not float32's 0.30000001)."""
    head = QuantileHead(1, 1, (0.2, 0.4, 0.9))
    params = torch.tensor([[[0.0, 1e6, 2e6]]], dtype=torch.float64)
    got = head.quantiles(params, [0.3])[0, 0, 0].item()
    lo, hi = float(np.float32(0.2)), float(np.float32(0.4))  # the trained levels' buffer
    assert got == pytest.approx(1e6 * (0.3 - lo) / (hi - lo), rel=1e-12)


def test_distribution_quantiles_keep_batch_and_horizon_axes_and_dtype():
    params = torch.stack([torch.arange(6.0).view(2, 3), torch.full((2, 3), 2.0)], dim=-1)
    normal = DistributionHead(1, 3, "normal").quantiles(params, [0.1, 0.5, 0.9])
    assert normal.shape == (2, 3, 3)
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.1, 0.5, 0.9]))
    torch.testing.assert_close(normal, params[..., :1] + 2.0 * z)
    t_params = torch.cat([params, torch.full((2, 3, 1), 5.0)], dim=-1)  # float32
    student = DistributionHead(1, 3, "studentt").quantiles(t_params, [0.25, 0.75])
    assert student.shape == (2, 3, 2) and student.dtype == torch.float32
    expected = params[..., :1] + 2.0 * torch.tensor(student_t.ppf([0.25, 0.75], 5.0),
                                                    dtype=torch.float32)
    torch.testing.assert_close(student, expected)
