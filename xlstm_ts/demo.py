"""`make demo`: the xLSTM cells and stack at work on the bundled airline series.

1. The three mLSTM forms give the same numbers; chunkwise is linear in S.
2. An embedding + XLSTMStack + linear head learns one-step-ahead forecasts of the
   (log, standardised) airline passengers, trained on 1949-1958.
3. 1959-1960 is forecast one step at a time with ``XLSTMStack.step``, the O(1)
   streaming update carried from the training history, and scored against the
   seasonal-naive forecast (same month last year).

This is the foundation demo; the forecaster issue replaces it with the full job.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .cells import mlstm
from .models import XLSTMStack

DATA = Path(__file__).resolve().parent.parent / "datasets" / "airline.csv"
TEST_MONTHS = 24
STEPS = 300


def _random_inputs(S: int, dtype: torch.dtype) -> list[torch.Tensor]:
    B, NH, D = 2, 4, 32
    q, k, v = (torch.randn(B, NH, S, D, dtype=dtype) for _ in range(3))
    return [q, k, v, torch.randn(B, NH, S, dtype=dtype), torch.randn(B, NH, S, dtype=dtype) + 3]


def _forms_agree() -> None:
    inputs = _random_inputs(512, torch.float64)
    h = {form: mlstm(*inputs, form=form) for form in ("parallel", "chunkwise", "recurrent")}
    for form in ("parallel", "chunkwise"):
        gap = (h[form] - h["recurrent"]).abs().max().item()
        print(f"  float64, S=512: max |{form} - recurrent| = {gap:.1e}")
    inputs = _random_inputs(2048, torch.float32)
    for form in ("parallel", "chunkwise"):
        start = time.perf_counter()
        mlstm(*inputs, form=form)
        print(f"  float32, S=2048: {form:<9} forward {time.perf_counter() - start:.3f} s")


class _OneStepModel(torch.nn.Module):
    def __init__(self, d_model: int = 32):
        super().__init__()
        self.embed = torch.nn.Linear(1, d_model)
        self.stack = XLSTMStack(d_model, 2, slstm_at=(1,), num_heads=4)
        self.head = torch.nn.Linear(d_model, 1)

    def forward(self, y: torch.Tensor) -> torch.Tensor:  # (B, S) -> (B, S)
        return self.head(self.stack(self.embed(y.unsqueeze(-1)))).squeeze(-1)


def _airline() -> None:
    passengers = pd.read_csv(DATA)["Passengers"].to_numpy(dtype=np.float64)
    # Model month-on-month log growth: stationary, so the test years (above any
    # training level) look like the training years to the network.
    growth = np.diff(np.log(passengers))
    n_train = len(growth) - TEST_MONTHS
    mean, std = growth[:n_train].mean(), growth[:n_train].std()
    z = torch.tensor((growth - mean) / std, dtype=torch.float32)

    torch.manual_seed(0)
    model = _OneStepModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.05)
    z_train = z[:n_train].unsqueeze(0)
    start = time.perf_counter()
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = (model(z_train[:, :-1]) - z_train[:, 1:])[:, 12:].pow(2).mean()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    print(f"  trained {STEPS} steps in {seconds:.1f} s, train MSE {loss.item():.3f}")

    model.eval()
    with torch.no_grad():
        # Warm the state up on the training history, then stream the test months.
        hidden, state = model.stack(model.embed(z_train[..., None]), return_state=True)
        preds = [model.head(hidden[:, -1]).item()]
        for t in range(n_train, len(z) - 1):
            h_t, state = model.stack.step(model.embed(z[t].view(1, 1)), state)
            preds.append(model.head(h_t).item())
    growth_hat = np.array(preds) * std + mean
    forecast = passengers[-TEST_MONTHS - 1 : -1] * np.exp(growth_hat)
    actual = passengers[-TEST_MONTHS:]
    seasonal_naive = passengers[-TEST_MONTHS - 12 : -12]
    mae_model = np.abs(forecast - actual).mean()
    mae_naive = np.abs(seasonal_naive - actual).mean()
    print(f"  one-step-ahead MAE over 1959-1960: xLSTM {mae_model:.1f} passengers, "
          f"seasonal naive {mae_naive:.1f} (ratio {mae_model / mae_naive:.2f})")


def main() -> None:
    torch.manual_seed(0)
    print("mLSTM forms on random inputs (B=2, NH=4, DH=32):")
    _forms_agree()
    print("Airline passengers, one-step-ahead with streaming state:")
    _airline()


if __name__ == "__main__":
    main()
