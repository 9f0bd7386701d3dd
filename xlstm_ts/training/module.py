"""ForecastModule: training and validation steps and the optimiser, nothing else."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import lightning as L
import torch

from ..models import NetworkConfig, build_network


@dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    schedule: str = "cosine"  # "cosine" (linear warm-up then cosine decay) or "onecycle"
    warmup: float = 0.05  # share of all steps spent warming up
    total_steps: int = 1000
    # the linear path starts at its least-squares optimum: its learning rate is this
    # share of the rest's, so the first steps of Adam (about ``learning_rate`` per weight
    # whatever the gradient) do not throw that start away
    linear_lr_scale: float = 0.01


class ForecastModule(L.LightningModule):
    """Wraps a forecasting network; the loss is the head's, in normalised units.

    """

    def __init__(self, network: NetworkConfig, optim: OptimConfig):
        super().__init__()
        # plain values in checkpoints, so they load with weights_only=True
        self.save_hyperparameters({"network": asdict(network), "optim": asdict(optim)})
        self.net = build_network(network)
        self.optim = optim

    def forward(self, batch):
        return self.net(batch)

    def _loss(self, batch) -> torch.Tensor:
        params, stats = self.net(batch)
        target = self.net.normalize_target(batch["target"], stats)
        # The target of an all-zero window (std at the smallest positive float) overflows
        # the normalised units: those steps carry no scale to learn from and are left out.
        finite = torch.isfinite(target)
        return self.net.head.loss(params, torch.where(finite, target, 0.0),
                                  batch["target_mask"] & finite)

    def on_train_start(self) -> None:
        self.skipped_steps = 0

    def on_before_optimizer_step(self, optimizer) -> None:
        """Skip the update of a step whose gradients are not finite (the loss was): one
        rare overflow in the exponential gates' backward (seen once in ~400 steps on
        M3 Yearly) would otherwise turn every weight into NaN through the clipping.
        Parameters without a gradient are left alone by the clipping and AdamW."""
        grads = [p.grad for p in self.parameters() if p.grad is not None]
        if grads and not torch.isfinite(torch.stack([g.norm() for g in grads])).all():
            for p in self.parameters():
                p.grad = None
            self.skipped_steps += 1
            if self.skipped_steps > max(10, 0.05 * (self.global_step + 1)):
                raise FloatingPointError(
                    f"{self.skipped_steps} of {self.global_step + 1} training steps had "
                    f"non-finite gradients; lower learning_rate.")

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step "
                                     f"{self.global_step}; lower learning_rate.")
        # epoch mean over every process's batches (each process has the same batch size)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 sync_dist=True, batch_size=len(batch["target"]))
        return loss

    # val_loss is the window-weighted mean over all validation windows, whichever
    # process scored them: sums are reduced across processes, then divided.
    def on_validation_epoch_start(self) -> None:
        self._val_sums = torch.zeros(2, dtype=torch.float64, device=self.device)

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        n = len(batch["target"])
        self._val_sums += torch.stack([loss.detach().double() * n,
                                       torch.tensor(n, dtype=torch.float64, device=self.device)])
        return loss

    def on_validation_epoch_end(self) -> None:
        total, count = self.trainer.strategy.reduce(self._val_sums, reduce_op="sum")
        if count > 0:
            # already reduced: equal on every rank, so the sync is a no-op mean
            self.log("val_loss", (total / count).float(), prog_bar=True, sync_dist=True)

    # The global RNG drives dropout; keeping its state in checkpoints lets a resumed fit
    # draw the same masks as an uninterrupted one.
    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["torch_rng_state"] = torch.get_rng_state()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if "torch_rng_state" in checkpoint:
            torch.set_rng_state(checkpoint["torch_rng_state"])

    def configure_optimizers(self):
        o = self.optim
        linear = getattr(self.net, "linear", None)
        linear_ids = {id(p) for p in linear.parameters()} if linear is not None else set()
        groups = [{"params": [p for p in self.parameters() if id(p) not in linear_ids]}]
        if linear_ids:
            groups.append({"params": list(linear.parameters()),
                           "lr": o.learning_rate * o.linear_lr_scale})
        optimizer = torch.optim.AdamW(groups, lr=o.learning_rate, weight_decay=o.weight_decay)
        total = max(o.total_steps, 1)
        if o.schedule == "onecycle":
            scheduler = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups], total_steps=total,
                pct_start=max(o.warmup, 1e-3))
        else:
            warm = max(int(o.warmup * total), 1)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                progress = min((step - warm) / max(total - warm, 1), 1.0)
                return 0.5 * (1.0 + math.cos(math.pi * progress))

            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
