"""xLSTM blocks and the stack: streaming equals full passes, gradients reach every weight."""

import pytest
import torch

from xlstm_ts.models import XLSTMStack, mLSTMBlock, sLSTMBlock

PATTERNS = [(), (0,), (1, 2), (0, 1, 2)]


@pytest.mark.parametrize("slstm_at", PATTERNS, ids=lambda p: f"slstm_at={p}")
def test_step_equals_forward(slstm_at):
    stack = XLSTMStack(16, 3, slstm_at=slstm_at, num_heads=2, chunk_size=4).double().eval()
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    y = stack(x)
    state, steps = None, []
    for t in range(x.shape[1]):
        y_t, state = stack.step(x[:, t], state)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y, atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("form", ["parallel", "chunkwise", "recurrent"])
def test_forward_with_carried_state_equals_one_pass(form):
    stack = XLSTMStack(16, 2, slstm_at=(1,), num_heads=4, mlstm_form=form,
                       chunk_size=4).double().eval()
    x = torch.randn(3, 19, 16, dtype=torch.float64)
    y_full = stack(x)
    y1, state = stack(x[:, :7], return_state=True)
    y2 = stack(x[:, 7:], state)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full, atol=1e-10, rtol=1e-10)


def test_outputs_are_causal():
    torch.manual_seed(0)
    stack = XLSTMStack(16, 2, slstm_at=(0,), num_heads=2).eval()
    x = torch.randn(1, 12, 16)
    x2 = x.clone()
    # a change that normalisation cannot remove (adding one constant to every feature
    # of a step is undone by the blocks' layer norms, so it showed nothing)
    x2[:, 8:] += torch.randn(1, 4, 16)
    torch.testing.assert_close(stack(x)[:, :8], stack(x2)[:, :8])
    assert not torch.allclose(stack(x)[:, 8:], stack(x2)[:, 8:])


def test_gradients_reach_every_parameter():
    stack = XLSTMStack(16, 2, slstm_at=(1,), num_heads=2, dropout=0.1)
    x = torch.randn(2, 10, 16)
    stack(x).pow(2).mean().backward()
    missing = [name for name, p in stack.named_parameters()
               if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert missing == []


def test_paper_initialisation_of_gate_biases():
    m_block = mLSTMBlock(16, num_heads=4)
    f_bias = m_block.gates.bias[4:]
    torch.testing.assert_close(f_bias, torch.linspace(3.0, 6.0, 4))
    assert m_block.gates.bias[:4].abs().max() < 0.5
    s_block = sLSTMBlock(16, num_heads=2)
    f_bias = s_block.gate_f.bias.view(2, 8)
    assert f_bias.min() == 3.0 and f_bias.max() == 6.0
    assert torch.equal(s_block.gate_i.bias, torch.zeros(16))


def test_learns_a_sine_wave():
    """A tiny stack predicts the next value of noisy sines far better than the last value."""
    torch.manual_seed(0)
    t = torch.arange(64, dtype=torch.float32)
    phase = torch.rand(32, 1) * 6.28
    series = torch.sin(0.4 * t + phase) + 0.05 * torch.randn(32, 64)  # (32, 64)
    inputs, targets = series[:, :-1, None], series[:, 1:]
    embed, head = torch.nn.Linear(1, 16), torch.nn.Linear(16, 1)
    stack = XLSTMStack(16, 2, slstm_at=(1,), num_heads=2)
    params = [*embed.parameters(), *stack.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        pred = head(stack(embed(inputs))).squeeze(-1)
        loss = (pred - targets)[:, 8:].pow(2).mean()
        loss.backward()
        opt.step()
    naive = (inputs.squeeze(-1) - targets)[:, 8:].pow(2).mean()
    assert loss.item() < 0.25 * naive.item()


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"d_model": 10, "num_blocks": 2, "num_heads": 4}, ValueError, "divisible by num_heads"),
        ({"d_model": 16, "num_blocks": 2, "slstm_at": (2,)}, ValueError, "slstm_at"),
        ({"d_model": 16, "num_blocks": 0}, ValueError, "num_blocks"),
        ({"d_model": 16, "num_blocks": 2, "dropout": 1.0}, ValueError, "dropout"),
        ({"d_model": 16, "num_blocks": 2, "mlstm_form": "fast"}, ValueError, "mlstm_form"),
        ({"d_model": 16.0, "num_blocks": 2}, TypeError, "d_model"),
    ],
)
def test_bad_configuration_raises(kwargs, error, match):
    with pytest.raises(error, match=match):
        XLSTMStack(**kwargs)


def test_bad_input_shape_raises():
    stack = XLSTMStack(16, 1)
    with pytest.raises(ValueError, match=r"x must have shape \(B, S, 16\)"):
        stack(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"x_t must have shape"):
        stack.step(torch.randn(2, 1, 16))
