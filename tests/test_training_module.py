"""ForecastModule (xlstm_ts/training/module.py): the optimiser's groups and schedules,
the loss over finite targets, and the errors a diverging fit raises."""

import math

import numpy as np
import pytest
import torch

from xlstm_ts import datasets
from xlstm_ts.data import WindowDataset, prepare_series
from xlstm_ts.models import NetworkConfig
from xlstm_ts.training.module import ForecastModule, OptimConfig

NET = NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2, patch_len=8,
                    patch_stride=8, dropout=0.0)


def _rates(optim: OptimConfig, steps: int, network: NetworkConfig = NET):
    """Learning rate of each parameter group before each of ``steps`` optimiser steps."""
    configured = ForecastModule(network, optim).configure_optimizers()
    optimizer, scheduler = configured["optimizer"], configured["lr_scheduler"]["scheduler"]
    assert configured["lr_scheduler"]["interval"] == "step"
    rates = []
    for _ in range(steps):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return optimizer, torch.tensor(rates)


def test_cosine_schedule_warms_up_linearly_then_decays_to_zero():
    optim = OptimConfig(learning_rate=1e-2, warmup=0.1, total_steps=100)
    _, rates = _rates(optim, 100)
    base = rates[:, 0]
    for step in (0, 4, 9):  # warm-up: 10 steps, (step + 1) / 10 of the rate
        assert base[step].item() == pytest.approx(1e-2 * (step + 1) / 10)
    for step in (10, 40, 99):
        expected = 1e-2 * 0.5 * (1 + math.cos(math.pi * (step - 10) / 90))
        assert base[step].item() == pytest.approx(expected)
    assert base.max().item() == pytest.approx(1e-2) and base[-1] < 1e-5


def test_onecycle_schedule_peaks_at_its_warmup_share():
    optim = OptimConfig(learning_rate=1e-2, warmup=0.3, total_steps=100, schedule="onecycle")
    _, rates = _rates(optim, 100)
    base = rates[:, 0]
    assert base[0].item() == pytest.approx(1e-2 / 25)  # OneCycleLR's initial division
    assert abs(base.argmax().item() - 29) <= 1 and base.max().item() == pytest.approx(1e-2)
    assert base[-1] < 1e-5


def test_the_linear_path_learns_at_its_share_of_the_rate_and_decays_with_it():
    optim = OptimConfig(learning_rate=1e-2, linear_lr_scale=0.1, weight_decay=0.05,
                        total_steps=20)
    optimizer, rates = _rates(optim, 20)
    linear, rest = optimizer.param_groups[1], optimizer.param_groups[0]
    module = ForecastModule(NET, optim)
    assert len(linear["params"]) == len(list(module.net.linear.parameters()))
    assert len(rest["params"]) + len(linear["params"]) == len(list(module.parameters()))
    torch.testing.assert_close(rates[:, 1], rates[:, 0] * 0.1)
    assert rest["weight_decay"] == linear["weight_decay"] == 0.05


def test_without_a_linear_path_there_is_one_group():
    optimizer, _ = _rates(OptimConfig(), 1,
                          NetworkConfig(**{**NET.__dict__, "linear_path": False}))
    assert len(optimizer.param_groups) == 1


def _batch(n: int = 4) -> dict:
    data = prepare_series(datasets.synthetic(n_series=2, length=80, seed=0))
    windows = WindowDataset(data, NET.lookback, NET.horizon)
    return windows[np.arange(n)]


def test_the_loss_leaves_out_targets_that_overflow_the_normalised_units(monkeypatch):
    module = ForecastModule(NET, OptimConfig())
    batch = _batch()
    clean = module._loss(batch)
    params, stats = module.net(batch)
    normalised = module.net.normalize_target(batch["target"], stats)
    keep = torch.ones_like(normalised, dtype=torch.bool)
    keep[0, :3] = False
    expected = module.net.head.loss(params, normalised, keep)
    overflow = normalised.masked_fill(~keep, float("inf"))
    monkeypatch.setattr(module.net, "normalize_target", lambda target, stats: overflow)
    got = module._loss(batch)
    assert torch.isfinite(got) and got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() != pytest.approx(clean.item(), rel=1e-6)


def test_a_non_finite_training_loss_stops_the_fit_naming_the_remedy(monkeypatch):
    module = ForecastModule(NET, OptimConfig())
    monkeypatch.setattr(module, "_loss", lambda batch: torch.tensor(float("nan")))
    with pytest.raises(FloatingPointError, match="training loss became nan at step 0; "
                                                 "lower learning_rate"):
        module.training_step(_batch(), 0)


def test_checkpoints_carry_the_random_state_so_a_resumed_fit_draws_the_same():
    module = ForecastModule(NET, OptimConfig())
    torch.manual_seed(3)
    checkpoint: dict = {}
    module.on_save_checkpoint(checkpoint)
    expected = torch.rand(5)
    torch.manual_seed(99)
    module.on_load_checkpoint(checkpoint)
    torch.testing.assert_close(torch.rand(5), expected)
    module.on_load_checkpoint({})  # older checkpoints without a state load as they are


def test_a_step_with_non_finite_gradients_is_skipped_and_many_escalate():
    """Issue 48, item 6: the skipping of non-finite gradient steps and its escalation
    were untested."""
    from xlstm_ts.training.module import ForecastModule, OptimConfig

    module = ForecastModule(NetworkConfig(lookback=32, horizon=8, d_model=8, num_heads=2,
                                          patch_len=8, patch_stride=8), OptimConfig())
    module.on_train_start()
    params = [p for p in module.parameters() if p.requires_grad]

    def gradients(bad: bool):
        for k, p in enumerate(params):
            p.grad = torch.full_like(p, float("nan") if bad and k == 0 else 0.5)

    gradients(bad=False)
    module.on_before_optimizer_step(None)  # finite: the step goes ahead untouched
    assert module.skipped_steps == 0 and all(p.grad is not None for p in params)
    gradients(bad=True)
    module.on_before_optimizer_step(None)  # one NaN anywhere: no parameter moves
    assert module.skipped_steps == 1 and all(p.grad is None for p in params)
    for _ in range(9):  # up to 10 skips (or 5% of the steps) are tolerated
        gradients(bad=True)
        module.on_before_optimizer_step(None)
    gradients(bad=True)
    with pytest.raises(FloatingPointError, match="11 of 1 training steps had non-finite"):
        module.on_before_optimizer_step(None)


def test_the_module_forecasts_with_its_network(random_batch):
    module = ForecastModule(NET, OptimConfig()).eval()
    batch = random_batch(L=NET.lookback, H=NET.horizon)
    params, _ = module(batch)
    expected, _ = module.net(batch)
    torch.testing.assert_close(params, expected)
    assert params.shape == (5, NET.horizon)
