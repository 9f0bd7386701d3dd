"""The rules of XLSTMForecaster's parameters, declared once.

A table in the spirit of scikit-learn's ``_parameter_constraints``: the estimator
checks it at every public entry point (``fit``, ``check``, ``load``) and the
CLI's config validation checks the ``model`` section with it, so a bad value is
named before any training. Network fields reuse the networks' own rules.
"""

from __future__ import annotations

import torch

from ._checks import (
    BOOL,
    PATH,
    SEED,
    STR,
    InstanceOf,
    Integer,
    NoneOr,
    Options,
    Real,
    SequenceOf,
    any_value,
)
from .cells import BACKENDS
from .models import NETWORK_CONSTRAINTS, NETWORKS

# the precisions Lightning accepts; the network fields' rules are the networks' own
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "16-true",
              "bf16-true", "transformer-engine")
PRETRAINED_NETWORKS = ("tirex2",)  # networks built from a checkpoint (``pretrained``)
NETWORK_PARAMS = ("lookback", "horizon", "network", "d_model", "num_blocks", "slstm_at",
                  "num_heads", "dropout", "linear_path", "n_models", "patch_len",
                  "patch_stride", "head", "loss", "quantiles", "backend")


def _precision(name: str, value: object) -> None:
    if str(value) not in PRECISIONS:
        raise ValueError(f"{name} must be one of {list(PRECISIONS)}. Got {value!r}.")


def _accelerator(name: str, value: object) -> None:
    STR(name, value)
    Options(("auto", "cpu", "gpu", "cuda", "mps", "tpu"))(name, value)
    if value in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} but no CUDA device is available here. Use "
                         f"accelerator='auto' or 'cpu'.")


def _ema_decay(name: str, value: object) -> None:
    if isinstance(value, str):
        if value != "auto":
            raise ValueError(f"{name} must be 'auto', None or a number in [0, 1). "
                             f"Got {value!r}.")
        return
    Real(0.0, 1.0, open="high")(name, value)


FORECASTER_CONSTRAINTS = {
    **{name: NETWORK_CONSTRAINTS[name] for name in NETWORK_PARAMS},
    # None: chosen from the horizon, the frequency and the data (xlstm_ts.presets)
    **{name: NoneOr(NETWORK_CONSTRAINTS[name]) for name in ("lookback", "patch_len",
                                                            "patch_stride", "n_models")},
    "season_length": NoneOr(Integer(1)), "intervals": Options(("calibrated", "head")),
    "nonnegative": NoneOr(BOOL),
    "learning_rate": NoneOr(Real(0.0, None, open="low")), "weight_decay": Real(0.0),
    "schedule": Options(("cosine", "onecycle")), "warmup": Real(0.0, 1.0),
    "batch_size": Integer(1), "max_epochs": Integer(1), "batches_per_epoch": NoneOr(Integer(1)),
    "val_size": NoneOr(Integer(0)), "patience": NoneOr(Integer(0)),
    "gradient_clip": NoneOr(Real(0.0, None, open="low")),
    "ema_decay": NoneOr(_ema_decay),
    "id_col": STR, "time_col": STR, "target_col": STR,
    "future_covariates": SequenceOf(STR), "past_covariates": SequenceOf(STR),
    "calendar": SequenceOf(STR), "fill_missing": NoneOr(Options(("nan", "ffill", "zero"))),
    "target_missing": Options(("raise", "mask", "ffill", "zero")),
    "accelerator": _accelerator, "devices": any_value, "precision": _precision,
    "strategy": InstanceOf((str,), "a Lightning strategy name such as 'auto' or 'ddp'"),
    "num_nodes": Integer(1), "backend": Options(BACKENDS), "progress_bar": NoneOr(BOOL),
    "logger": any_value, "callbacks": NoneOr(SequenceOf(any_value)),
    "checkpoint_dir": NoneOr(PATH), "random_state": NoneOr(SEED),
    "network": Options((*NETWORKS, *PRETRAINED_NETWORKS)),
    "pretrained": NoneOr(PATH), "finetune": NoneOr(Options(("all", "head"))),
}
