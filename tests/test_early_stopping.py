"""Early stopping and the restore of the best validation weights in fit (issue 20).

The accuracy work leans on both: a fit must stop ``patience`` epochs after its best
validation loss and hand back that epoch's weights, not the last ones.
"""

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from xlstm_ts import XLSTMForecaster


class WeightsAtValidation(Callback):
    """Snapshots of the network and its val_loss after every validation."""

    def __init__(self):
        self.snapshots = []

    def on_validation_end(self, trainer, module):
        self.snapshots.append((float(trainer.callback_metrics["val_loss"]),
                               {k: v.detach().clone() for k, v in module.net.state_dict().items()}))


def _overfitting(**params):
    """White noise with a large, fast network: validation improves briefly, then worsens."""
    rng = np.random.default_rng(0)
    times = pd.date_range("2024-01-01", periods=300, freq="h")
    df = pd.concat([pd.DataFrame({"unique_id": f"s{j}", "ds": times,
                                  "y": rng.standard_normal(300)}) for j in range(2)])
    recorder = WeightsAtValidation()
    model = XLSTMForecaster(lookback=48, horizon=8, d_model=64, patch_len=8, patch_stride=4,
                            dropout=0.0, learning_rate=3e-2, weight_decay=0.0, max_epochs=40,
                            batches_per_epoch=8, batch_size=32, patience=3, val_size=48,
                            progress_bar=False, random_state=0, callbacks=[recorder], **params)
    return model.fit(df), recorder


@pytest.fixture(scope="module")
def overfitting_fit():
    return _overfitting(linear_path=False)


def test_stops_patience_epochs_after_the_best(overfitting_fit):
    model, recorder = overfitting_fit
    losses = [loss for loss, _ in recorder.snapshots]
    best = int(np.argmin(losses))
    assert len(losses) < 40, "the fit never stopped early"
    assert len(losses) == best + 1 + model.patience  # stopped exactly `patience` epochs later
    assert model.loss_history_["val_loss"] == pytest.approx(losses)


def test_restores_the_best_validation_weights_not_the_last(overfitting_fit):
    model, recorder = overfitting_fit
    losses = [loss for loss, _ in recorder.snapshots]
    best_weights = recorder.snapshots[int(np.argmin(losses))][1]
    last_weights = recorder.snapshots[-1][1]
    final = model.network_.state_dict()
    assert all(torch.equal(final[k], best_weights[k]) for k in final)
    assert not all(torch.equal(final[k], last_weights[k]) for k in final)


def test_keeps_the_linear_start_when_training_never_beats_it():
    """With the linear path, training starts from the least-squares linear forecast and
    no correction; on white noise no epoch beats that on validation, so it is kept."""
    model, recorder = _overfitting()
    start = model.network_
    assert all(loss > 0 for loss, _ in recorder.snapshots)
    assert torch.count_nonzero(start.head.proj.weight) == 0  # the correction is still zero
    assert model.correction_share_ == [0.0]
    assert torch.count_nonzero(start.linear.weight) > 0  # the ridge solution, not zeros
    trained = {k: v for k, v in recorder.snapshots[0][1].items() if k.startswith("head.")}
    assert any(torch.count_nonzero(v) for v in trained.values())  # training did move it
