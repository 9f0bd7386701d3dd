"""Pretraining a TiRex-2 network on a corpus (:mod:`.corpus`) with Lightning: random
context and horizon lengths, the pinball loss of the network's quantiles, checkpoints
to resume from, MLflow tracking, Lightning's strategies (DDP) for many devices.

``xlstm-ts pretrain --config configs/pretrain-small.yaml`` runs :func:`pretrain`."""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import lightning as L
import numpy as np
import torch
import yaml

from ..models.tirex2 import BlockConfig, TiRex2Config, TiRex2Network, save_checkpoint
from ..models.tirex2.windows import quantile_loss, window_quantiles
from .corpus import CorpusWindows, sample_window, write_corpus

log = logging.getLogger("xlstm_ts.pretraining")


@dataclass
class CorpusSection:
    dir: str = "outputs/pretrain-corpus"
    synthetic_series: int = 20000
    length: int = 1024
    shard_series: int = 2000
    real_folders: list = field(default_factory=lambda: ["datasets", "../shared/datasets"])
    seed: int = 0


@dataclass
class ModelSection:
    embedding_dim: int = 64
    patch_size: int = 16
    context_len: int = 512
    future_len: int = 64
    input_ff_dim: int = 128
    blocks: list = field(default_factory=lambda: ["bi-mlstm", "bi-slstm"] * 2)
    num_heads: int = 4


@dataclass
class TrainingSection:
    max_steps: int = 20000
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 500
    val_windows: int = 2048
    val_every: int = 500
    min_context: int = 32
    seed: int = 0
    accelerator: str = "auto"
    devices: object = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 0


@dataclass
class OutputSection:
    dir: str = "outputs/pretrain-small"  # Lightning checkpoints (resume), losses
    checkpoint: str = "outputs/xlstm-ts-small"  # the network: config.json + safetensors


@dataclass
class PretrainConfig:
    """A pretraining job (``configs/pretrain-small.yaml``); relative paths are taken
    from the config file's folder."""

    corpus: CorpusSection = field(default_factory=CorpusSection)
    model: ModelSection = field(default_factory=ModelSection)
    training: TrainingSection = field(default_factory=TrainingSection)
    output: OutputSection = field(default_factory=OutputSection)
    tracking: dict = field(default_factory=dict)  # {uri, experiment}; {} = output.dir sqlite

    @classmethod
    def from_dict(cls, raw: dict, base: Path = Path(".")) -> PretrainConfig:
        """Every unknown section or key is named at once (one ValueError)."""
        errors, sections = [], {}
        types = {f.name: f.type for f in fields(cls)}
        kinds = {"corpus": CorpusSection, "model": ModelSection, "training": TrainingSection,
                 "output": OutputSection}
        for name, value in (raw or {}).items():
            if name not in types:
                errors.append(f"unknown section {name!r} (known: {sorted(types)})")
            elif name == "tracking":
                sections[name] = dict(value or {})
            else:
                known = {f.name for f in fields(kinds[name])}
                bad = sorted(set(value or {}) - known)
                errors += [f"{name}.{k}: unknown key (known: {sorted(known)})" for k in bad]
                sections[name] = kinds[name](**{k: v for k, v in (value or {}).items()
                                                if k in known})
        if errors:
            raise ValueError("pretraining config: " + "; ".join(errors))
        config = cls(**sections)
        config.corpus.dir = str(base / config.corpus.dir)
        config.output.dir = str(base / config.output.dir)
        config.output.checkpoint = str(base / config.output.checkpoint)
        config.corpus.real_folders = [str(base / f) for f in config.corpus.real_folders]
        config.network()  # the model section checked now, before any work
        return config

    @classmethod
    def load(cls, path: str | os.PathLike) -> PretrainConfig:
        """The config of a YAML file (paths relative to its folder)."""
        path = Path(path)
        return cls.from_dict(yaml.safe_load(path.read_text()), path.parent)

    def network(self) -> TiRex2Config:
        """The network's config (validated)."""
        m = self.model
        return TiRex2Config(
            embedding_dim=m.embedding_dim, patch_size=m.patch_size, context_len=m.context_len,
            future_len=m.future_len, input_ff_dim=m.input_ff_dim,
            blocks=tuple(BlockConfig(time_mixer=b, num_heads=m.num_heads,
                                     num_slstm_heads=m.num_heads, variate_heads=m.num_heads)
                         for b in m.blocks),
            extra={"model_name": "xlstm-ts pretrained TiRex-2 architecture"})


def as_window_batch(batch: dict) -> dict:
    """A corpus batch (``history``, ``target`` with NaN where absent) in the layout of
    :func:`~xlstm_ts.models.tirex2.windows.window_quantiles` (no covariates)."""
    history, target = batch["history"], batch["target"]
    B, L = history.shape
    return {"history": torch.nan_to_num(history), "history_mask": ~history.isnan(),
            "target": torch.nan_to_num(target), "target_mask": ~target.isnan(),
            "past": history.new_zeros(B, L, 0),
            "future": history.new_zeros(B, L + target.shape[1], 0)}


class PretrainModule(L.LightningModule):
    """The network trained on corpus windows; AdamW with warm-up and cosine decay."""

    def __init__(self, config: TiRex2Config, training: TrainingSection):
        super().__init__()
        self.net = TiRex2Network(config)
        self.training_config = training

    def _loss(self, batch) -> torch.Tensor:
        windows = as_window_batch(batch)
        return quantile_loss(window_quantiles(self.net, windows), self.net.quantiles, windows)

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train_loss", loss, on_step=True, on_epoch=False, prog_bar=True,
                 batch_size=len(batch["target"]))
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("val_loss", loss, on_step=False, on_epoch=True, sync_dist=True,
                 batch_size=len(batch["target"]))
        return loss

    def configure_optimizers(self):
        t = self.training_config
        optimizer = torch.optim.AdamW(self.net.parameters(), lr=t.learning_rate,
                                      weight_decay=t.weight_decay)

        def factor(step: int) -> float:
            if step < t.warmup_steps:
                return (step + 1) / t.warmup_steps
            progress = (step - t.warmup_steps) / max(1, t.max_steps - t.warmup_steps)
            # a Python float: a numpy scalar in the scheduler's state would make the
            # checkpoint unreadable with torch.load(weights_only=True) on resume
            return float(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return [optimizer], [{"scheduler": schedule, "interval": "step"}]


def validation_windows(corpus: str | os.PathLike, config: TiRex2Config, count: int,
                       min_context: int, seed: int) -> dict:
    """A fixed set of ``count`` windows (another seed than training's), the same in
    every run and every resume: what the final validation loss is measured on."""
    rng = np.random.default_rng(seed + 10_000)
    reader = CorpusWindows(corpus, config.context_len, config.future_len, min_context)
    import polars as pl

    series = [np.asarray(v, np.float64) for shard in reader.shards
              for v in pl.read_parquet(Path(corpus) / shard, columns=["values"])["values"]]
    series = [s for s in series if len(s) >= min_context + 1]
    pairs = [sample_window(rng, series[int(rng.integers(len(series)))], config.context_len,
                           config.future_len, min_context) for _ in range(count)]
    return {"history": torch.from_numpy(np.stack([p[0] for p in pairs])),
            "target": torch.from_numpy(np.stack([p[1] for p in pairs]))}


def _logger(config: PretrainConfig):
    from lightning.pytorch.loggers import MLFlowLogger

    uri = config.tracking.get("uri") or f"sqlite:///{Path(config.output.dir) / 'mlflow.db'}"
    return MLFlowLogger(experiment_name=config.tracking.get("experiment", "pretrain"),
                        tracking_uri=uri)


def pretrain(config: PretrainConfig, *, progress_bar: bool = False) -> dict:
    """Build the corpus if missing, train (resuming from ``output.dir/last.ckpt`` when
    it exists), write the network to ``output.checkpoint`` and return a summary
    (steps, final validation loss, paths), also written as ``summary.json``."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    t, out = config.training, Path(config.output.dir)
    out.mkdir(parents=True, exist_ok=True)
    if not (Path(config.corpus.dir) / "manifest.json").exists():
        c = config.corpus
        log.info("writing the corpus to %s", c.dir)
        write_corpus(c.dir, synthetic_series=c.synthetic_series, length=c.length,
                     real_folders=c.real_folders, seed=c.seed, shard_series=c.shard_series)
    network = config.network()
    L.seed_everything(t.seed, workers=True, verbose=False)
    module = PretrainModule(network, t)
    train = torch.utils.data.DataLoader(
        CorpusWindows(config.corpus.dir, network.context_len, network.future_len,
                      t.min_context, seed=t.seed), batch_size=t.batch_size,
        num_workers=t.num_workers)
    val = validation_windows(config.corpus.dir, network, t.val_windows, t.min_context, t.seed)
    val_loader = torch.utils.data.DataLoader(
        [{"history": h, "target": y} for h, y in zip(val["history"], val["target"],
                                                      strict=True)], batch_size=256)
    checkpoints = ModelCheckpoint(dirpath=out, filename="{step}", save_last=True,
                                  every_n_train_steps=t.val_every, save_top_k=-1)
    # univariate corpus windows leave the variate mixers and the backward combination
    # unused: DDP has to be told, or it waits for their gradients
    strategy = "ddp_find_unused_parameters_true" if t.strategy == "ddp" else t.strategy
    trainer = L.Trainer(max_steps=t.max_steps, val_check_interval=t.val_every,
                        check_val_every_n_epoch=None, limit_val_batches=None,
                        accelerator=t.accelerator, devices=t.devices, strategy=strategy,
                        num_nodes=t.num_nodes, logger=_logger(config),
                        callbacks=[checkpoints], enable_progress_bar=progress_bar,
                        enable_model_summary=False, num_sanity_val_steps=0,
                        gradient_clip_val=1.0, default_root_dir=out)
    resume = out / "last.ckpt"
    trainer.fit(module, train, val_loader, ckpt_path=str(resume) if resume.exists() else None)
    module.net.eval()
    with torch.no_grad():
        windows = as_window_batch(val)
        final = float(quantile_loss(window_quantiles(module.net, windows), module.net.quantiles,
                                    windows))
    if trainer.is_global_zero:
        save_checkpoint(module.net, config.output.checkpoint)
    summary = {"steps": int(trainer.global_step), "val_loss": final,
               "checkpoint": config.output.checkpoint,
               "parameters": sum(p.numel() for p in module.net.parameters()),
               "config": {k: v for k, v in asdict(config).items() if k != "tracking"}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
