"""The TiRex-2 architecture's settings, read from and written to a checkpoint's
``config.json`` (NX-AI's format, so released checkpoints load as they are).

Only settings are read: an activation is one of :data:`ACTIVATIONS` by name (the
reference package imports any dotted path named in the file; a config here never
names code to run).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

ACTIVATIONS = {"GELU": nn.GELU, "SiLU": nn.SiLU, "ReLU": nn.ReLU, "Tanh": nn.Tanh,
               "Mish": nn.Mish, "ELU": nn.ELU, "LeakyReLU": nn.LeakyReLU}
TIME_MIXERS = ("bi-slstm", "bi-mlstm")


def _need(mapping: dict, key: str, where: str):
    if key not in mapping:
        raise ValueError(f"TiRex-2 config: {where} has no {key!r}.")
    return mapping[key]


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"TiRex-2 config: {name} must be a positive integer. Got {value!r}.")
    return value


@dataclass(frozen=True)
class BlockConfig:
    """One block of the stack: a bidirectional recurrent time mixer, then attention
    across the variates of each series (per patch position).

    time_mixer: ``"bi-mlstm"`` or ``"bi-slstm"``; num_heads: the mLSTM's heads (and
    the attention's, ``variate_heads``); num_slstm_heads: the sLSTM's heads."""

    time_mixer: str
    num_heads: int = 4
    num_slstm_heads: int | None = None
    variate_heads: int = 4
    use_qk_norm: bool = True

    @property
    def recurrent_heads(self) -> int:
        if self.time_mixer == "bi-slstm" and self.num_slstm_heads is not None:
            return self.num_slstm_heads
        return self.num_heads


@dataclass(frozen=True)
class TiRex2Config:
    """The network's shape and its test-time options.

    Lengths are in time steps: ``context_len`` steps of history at most,
    ``future_len`` steps forecast in one pass (the released models: 2048 and 320),
    tokens of ``patch_size`` steps every ``patch_stride``."""

    embedding_dim: int
    patch_size: int
    context_len: int
    future_len: int
    input_ff_dim: int
    blocks: tuple[BlockConfig, ...]
    quantiles: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
    patch_stride: int | None = None
    h_expand: float = 1.0
    activation: str = "GELU"
    dropout: float = 0.0
    scaler_eps: float = 1e-8
    scaler_arcsinh: bool = False
    scaler_binary_aware: bool = False
    out_norm: str | None = None  # None, "layer" (T5 style, no mean) or "rms"
    out_norm_eps: float = 1e-7
    tta_sign_flip: bool = False
    tta_diff: bool = True
    norm_eps: float = 1e-6
    mlstm_eps: float = 1e-6
    extra: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        for name in ("embedding_dim", "patch_size", "context_len", "future_len",
                     "input_ff_dim"):
            _positive_int(getattr(self, name), name)
        if self.patch_stride is None:
            object.__setattr__(self, "patch_stride", self.patch_size)
        if self.patch_stride != self.patch_size:
            raise ValueError(f"TiRex-2 config: input_patch_stride ({self.patch_stride}) "
                             f"must equal the patch size ({self.patch_size}).")
        if self.future_len % self.patch_size:
            raise ValueError(f"TiRex-2 config: future_len ({self.future_len}) must be a "
                             f"multiple of the patch size ({self.patch_size}).")
        if self.context_len % self.patch_size:
            raise ValueError(f"TiRex-2 config: context_len ({self.context_len}) must be a "
                             f"multiple of the patch size ({self.patch_size}).")
        if not self.blocks:
            raise ValueError("TiRex-2 config: the stack has no blocks.")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"TiRex-2 config: act_func {self.activation!r} is not one of "
                             f"{sorted(ACTIVATIONS)}.")
        q = self.quantiles
        if not q or any(not 0 < x < 1 for x in q) or list(q) != sorted(q):
            raise ValueError(f"TiRex-2 config: quantiles must increase inside (0, 1). Got {q}.")
        for k, block in enumerate(self.blocks):
            if block.time_mixer not in TIME_MIXERS:
                raise ValueError(f"TiRex-2 config: block {k}'s time mixer "
                                 f"{block.time_mixer!r} is not one of {TIME_MIXERS}.")
            for heads in (block.recurrent_heads, block.variate_heads):
                if self.embedding_dim % _positive_int(heads, f"block {k}'s heads"):
                    raise ValueError(f"TiRex-2 config: block {k}'s {heads} heads do not "
                                     f"divide embedding_dim {self.embedding_dim}.")

    @property
    def median_index(self) -> int:
        """Index of the quantile the post-processing treats as the median."""
        return len(self.quantiles) // 2

    @property
    def ffn_dim(self) -> int:
        """The time mixers' SwiGLU width: 8/3 of the embedding, up to a multiple of 64."""
        return int(math.ceil(self.embedding_dim * 2.6667 / 64) * 64)

    @classmethod
    def from_dict(cls, config: dict) -> TiRex2Config:
        """From a checkpoint's ``config.json`` (NX-AI's TiRex-2 format)."""
        if not isinstance(config, dict):
            raise ValueError("TiRex-2 config: config.json must hold a JSON object.")
        stack = _need(config, "stack_config", "config.json")
        templates = _need(stack, "templates", "stack_config")
        recipe = _need(stack, "recipe", "stack_config")
        num_blocks = _need(config, "num_blocks", "config.json")
        if len(recipe) != num_blocks:
            raise ValueError(f"TiRex-2 config: the recipe names {len(recipe)} blocks, "
                             f"num_blocks is {num_blocks}.")
        use_qk_norm = bool(config.get("use_qk_norm", True))
        blocks = []
        for name in recipe:
            template = _need(templates, name, "stack_config.templates")
            time = _need(template, "time_mixer", f"template {name!r}")
            variate = _need(template, "variate_mixer", f"template {name!r}")
            for part, dim in (("time_mixer", time.get("embedding_dim")),
                              ("variate_mixer", variate.get("embedding_dim"))):
                if dim is not None and dim != config.get("embedding_dim"):
                    raise ValueError(f"TiRex-2 config: template {name!r}'s {part} has "
                                     f"embedding_dim {dim}, the model "
                                     f"{config.get('embedding_dim')}.")
            blocks.append(BlockConfig(
                time_mixer=_need(time, "model_type", f"template {name!r}'s time_mixer"),
                num_heads=time.get("num_heads", 4), num_slstm_heads=time.get("num_slstm_heads"),
                variate_heads=variate.get("num_heads", 4),
                use_qk_norm=variate.get("use_qk_norm", use_qk_norm)))
        patch = _need(config, "input_patch_size", "config.json")
        if config.get("output_patch_size", patch) != patch:
            raise ValueError("TiRex-2 config: output_patch_size must equal input_patch_size.")
        tokenizer = config.get("tokenizer_cfg", {})
        scaler = config.get("scaler_cfg", {})
        norm = config.get("stack_out_norm_config")
        return cls(
            embedding_dim=_need(config, "embedding_dim", "config.json"), patch_size=patch,
            patch_stride=tokenizer.get("input_patch_stride", patch),
            context_len=_need(config, "context_len", "config.json"),
            future_len=_need(config, "future_len", "config.json"),
            input_ff_dim=_need(config, "input_ff_dim", "config.json"),
            blocks=tuple(blocks), quantiles=tuple(float(q) for q in config["quantiles"]),
            h_expand=float(config.get("h_expand", 1.0)),
            activation=str(config.get("act_func", "GELU")).rsplit(".", 1)[-1],
            dropout=float(config.get("dropout", 0.0)),
            scaler_eps=float(scaler.get("eps", 1e-8)),
            scaler_arcsinh=bool(scaler.get("use_arcsinh", False)),
            scaler_binary_aware=bool(scaler.get("binaryaware", False)),
            out_norm=None if norm is None else ("rms" if norm.get("use_rmsnorm") else "layer"),
            out_norm_eps=float((norm or {}).get("eps", 1e-7)),
            tta_sign_flip=bool(config.get("tta_sign_flip", False)),
            tta_diff=bool(config.get("tta_diff", True)),
            extra={k: v for k, v in config.items() if k == "model_name"})

    def to_dict(self) -> dict:
        """The ``config.json`` of this architecture (readable by the reference package)."""
        templates, recipe = {}, []
        uniform_qk_norm = len({b.use_qk_norm for b in self.blocks}) == 1
        for block in self.blocks:
            time = {"model_type": block.time_mixer, "embedding_dim": self.embedding_dim,
                    "num_heads": block.num_heads}
            if block.num_slstm_heads is not None:
                time["num_slstm_heads"] = block.num_slstm_heads
            variate = {"embedding_dim": self.embedding_dim, "num_heads": block.variate_heads}
            if not uniform_qk_norm:  # a per-block setting (the reference reads one for all)
                variate["use_qk_norm"] = block.use_qk_norm
            template = {"time_mixer": time, "variate_mixer": variate,
                        "dropout": self.dropout, "eps": 1e-6}
            name = next((k for k, v in templates.items() if v == template), None)
            if name is None:
                name = f"block{len(templates)}"
                templates[name] = template
            recipe.append(name)
        config = {
            "stack_config": {"templates": templates, "recipe": recipe},
            "num_blocks": len(self.blocks), "embedding_dim": self.embedding_dim,
            "input_patch_size": self.patch_size, "output_patch_size": self.patch_size,
            "quantiles": list(self.quantiles),
            "tokenizer_cfg": {"output_patch_size": self.patch_size,
                              "input_patch_size": self.patch_size,
                              "input_patch_stride": self.patch_stride},
            "scaler_cfg": {"eps": self.scaler_eps, "use_arcsinh": self.scaler_arcsinh,
                           "binaryaware": self.scaler_binary_aware},
            "h_expand": self.h_expand, "context_len": self.context_len,
            "future_len": self.future_len, "input_ff_dim": self.input_ff_dim,
            "act_func": self.activation, "dropout": self.dropout,
            "tta_sign_flip": self.tta_sign_flip, "tta_diff": self.tta_diff,
            **self.extra}
        if uniform_qk_norm:
            config["use_qk_norm"] = self.blocks[0].use_qk_norm
        if self.out_norm is not None:
            config["stack_out_norm_config"] = {"eps": self.out_norm_eps,
                                               "use_rmsnorm": self.out_norm == "rms"}
        return config
