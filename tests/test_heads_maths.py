"""The heads' losses and quantiles against values worked out by hand (issue 20)."""

import math

import pytest
import torch

from xlstm_ts.models import DistributionHead, PointHead, QuantileHead


def test_point_losses_by_hand():
    params = torch.tensor([[1.0, 2.0, 4.0]])
    target = torch.tensor([[1.5, 0.0, 4.0]])
    mask = torch.tensor([[True, True, False]])  # the third step is left out
    assert PointHead(1, 3, "mse").loss(params, target, mask).item() == pytest.approx(
        (0.25 + 4.0) / 2)
    assert PointHead(1, 3, "mae").loss(params, target, mask).item() == pytest.approx(
        (0.5 + 2.0) / 2)
    # Huber with delta 1: 0.5 e^2 inside, |e| - 0.5 outside
    assert PointHead(1, 3, "huber").loss(params, target, mask).item() == pytest.approx(
        (0.5 * 0.25 + (2.0 - 0.5)) / 2)


def test_pinball_loss_by_hand():
    head = QuantileHead(1, 1, (0.1, 0.5, 0.9))
    params = torch.tensor([[[0.0, 1.0, 2.0]]])  # quantiles (B=1, H=1, Q=3)
    target = torch.tensor([[1.5]])
    # pinball: q * (y - p) if y >= p else (1 - q) * (p - y)
    expected = (0.1 * 1.5 + 0.5 * 0.5 + (1 - 0.9) * 0.5) / 3
    assert head.loss(params, target).item() == pytest.approx(expected)
    # interpolated levels between the trained ones, clamped at the ends
    got = head.quantiles(params, [0.3, 0.5, 0.05, 0.95])[0, 0]
    torch.testing.assert_close(got, torch.tensor([0.5, 1.0, 0.0, 2.0]))


def test_normal_nll_and_quantiles_by_hand():
    head = DistributionHead(1, 1, "normal")
    params = torch.tensor([[[1.0, 2.0]]])  # loc 1, scale 2
    target = torch.tensor([[2.0]])
    nll = 0.5 * math.log(2 * math.pi) + math.log(2.0) + 0.5 * (0.5 ** 2)
    assert head.loss(params, target).item() == pytest.approx(nll)
    z = torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor([0.1, 0.5, 0.9]))
    torch.testing.assert_close(head.quantiles(params, [0.1, 0.5, 0.9])[0, 0], 1.0 + 2.0 * z)
    assert head.point(params).item() == 1.0


def test_studentt_nll_by_hand():
    head = DistributionHead(1, 1, "studentt")
    loc, scale, df = 0.5, 1.5, 4.0
    params = torch.tensor([[[loc, scale, df]]])
    y = 2.0
    t = (y - loc) / scale
    log_pdf = (math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
               - math.log(scale) - (df + 1) / 2 * math.log1p(t * t / df))
    assert head.loss(params, torch.tensor([[y]])).item() == pytest.approx(-log_pdf)


def test_point_head_names_where_quantiles_come_from():
    head = PointHead(4, 2, "mse")
    with pytest.raises(ValueError, match="head='quantile', 'normal' or 'studentt', or "
                                         "conformal intervals"):
        head.quantiles(torch.zeros(1, 2, 1), (0.5,))


def test_huber_loss_switches_to_linear_at_one():
    head = PointHead(4, 1, "huber")
    target, mask = torch.zeros(1, 1), torch.ones(1, 1, dtype=torch.bool)
    # 0.5 e^2 inside |e| <= 1, |e| - 0.5 outside
    assert head.loss(torch.full((1, 1), 0.8), target, mask).item() == pytest.approx(0.32)
    assert head.loss(torch.full((1, 1), 3.0), target, mask).item() == pytest.approx(2.5)
