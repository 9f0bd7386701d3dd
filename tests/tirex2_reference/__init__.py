"""The reference TiRex-2 (NX-AI's ``tirex-2`` package) as the tests' oracle: a model
built from a config with seeded random weights, saved as a checkpoint folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

QUANTILES = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def config(D: int = 32, P: int = 8, context: int = 64, future: int = 24,
           recipe=("m", "s"), heads: int = 2, ff: int | None = None, h_expand: float = 1.0,
           **options) -> dict:
    """A ``config.json`` in the reference format: blocks named by ``recipe`` ("m": bi-mLSTM,
    "s": bi-sLSTM), each with attention across variates."""
    def template(kind):
        return {"time_mixer": {"model_type": kind, "embedding_dim": D, "num_heads": heads,
                               "num_slstm_heads": heads},
                "variate_mixer": {"embedding_dim": D, "num_heads": heads},
                "dropout": 0.0, "eps": 1e-6}

    return {"stack_config": {"templates": {"m": template("bi-mlstm"), "s": template("bi-slstm")},
                             "recipe": list(recipe)},
            "num_blocks": len(recipe), "embedding_dim": D, "input_patch_size": P,
            "output_patch_size": P, "quantiles": QUANTILES,
            "tokenizer_cfg": {"output_patch_size": P, "input_patch_size": P,
                              "input_patch_stride": P},
            "scaler_cfg": {"eps": 1e-8}, "h_expand": h_expand, "context_len": context,
            "future_len": future, "input_ff_dim": ff or 2 * D, "act_func": "GELU",
            "dropout": 0.0, **options}


def reference_model(cfg: dict, seed: int = 0):
    """The reference network of ``cfg`` on the CPU, every weight drawn from a seeded
    normal (norm weights around 1), in eval mode."""
    from tirex2.model import TiRex2

    model = TiRex2(**{**cfg, "device": "cpu"})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        seen = set()
        for name, p in model.named_parameters():
            if id(p) in seen:
                continue
            seen.add(id(p))
            noise = torch.randn(p.shape, generator=generator)
            if "norm" in name:
                p.copy_(1.0 + 0.1 * noise)
            else:
                fan_in = p.shape[-1] if p.ndim > 1 else 1
                p.copy_(noise * (0.5 / fan_in ** 0.5 if p.ndim > 1 else 0.1))
            if name.endswith("fgate_preact.bias") or name.endswith("_bias_"):
                p.add_(2.0)  # forget gates mostly open, as trained models have them
    return model.eval()


def save_reference(model, cfg: dict, folder: Path, *, keep_aliases: bool = True) -> Path:
    """Write ``model`` as a checkpoint folder (config.json + model.safetensors). Shared
    tensors are written under every name (copies) or, without ``keep_aliases``, under
    the first name only, as NX-AI's converter does."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    tensors, seen = {}, set()
    for name, tensor in model.state_dict(keep_vars=True).items():
        if id(tensor) in seen and not keep_aliases:
            continue
        seen.add(id(tensor))
        tensors[name] = tensor.detach().clone().contiguous()
    save_file(tensors, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(cfg))
    return folder


def full_size(recipe: str = "mssmss") -> dict:
    """The released models' shapes (embedding 512, patches of 32, context 2048, horizon
    320, 9 quantiles) with six blocks, one mLSTM to two sLSTM: 41M parameters (the
    released model has 38M active)."""
    return config(D=512, P=32, context=2048, future=320, recipe=tuple(recipe), heads=4,
                  ff=2048)
