"""Forecasting networks: a patched xLSTM encoder and an xLSTMTime-style variant.

Both take one batch of windows from :class:`xlstm_ts.data.WindowDataset` (the
target history, its mask, covariates, static features) and return head
parameters for all H horizon steps in units normalised per window (RevIN);
``denormalize`` maps point forecasts and quantiles back. Channel-independent:
each series is its own sample, so one global model serves every series.

Shapes: B batch, L lookback, H horizon, P past covariates, F future covariates,
K static features, D model width, N patches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F_
from torch import nn

from .._checks import BOOL, Integer, Options, Real, SequenceOf, check_params
from ..cells import BACKENDS
from .heads import PointHead, build_head
from .layers import Standardize
from .revin import RevIN
from .stack import XLSTMStack

NETWORKS = ("patch", "xlstmtime", "mixer")
HEADS = ("point", "quantile", "normal", "studentt")

def _quantile_levels(name: str, value: object) -> None:
    SequenceOf(Real())(name, value)
    if not value or not all(0.0 < q < 1.0 for q in value):
        raise ValueError(f"{name} must be levels in (0, 1). Got {value!r}.")


# Each field's rule, declared once; the estimator's parameter table reuses these.
NETWORK_CONSTRAINTS = {
    "lookback": Integer(1), "horizon": Integer(1), "network": Options(NETWORKS),
    "d_model": Integer(1), "num_blocks": Integer(1), "slstm_at": SequenceOf(Integer(0)),
    "num_heads": Integer(1), "dropout": Real(0.0, 1.0, open="high"),
    "patch_len": Integer(1), "patch_stride": Integer(1), "decomposition_kernel": Integer(1),
    "head": Options(HEADS), "loss": Options(PointHead.LOSSES),
    "quantiles": _quantile_levels,
    "n_past": Integer(0), "n_future": Integer(0), "n_static": Integer(0),
    "n_channels": Integer(0),
    "revin_affine": BOOL, "linear_path": BOOL, "future_path": Options(("local", "dense")),
    "n_models": Integer(1),
    "backend": Options(BACKENDS),
}


@dataclass(frozen=True)
class NetworkConfig:
    """Everything needed to build a network; saved with a fitted model."""

    lookback: int
    horizon: int
    network: str = "patch"  # "patch" (patched xLSTM encoder) or "xlstmtime"
    d_model: int = 64  # width of the xLSTM residual stream
    num_blocks: int = 2
    slstm_at: tuple[int, ...] = (1,)  # block indices that are sLSTM blocks
    num_heads: int = 4
    dropout: float = 0.1
    patch_len: int = 16  # "patch": steps per patch token
    patch_stride: int = 8  # "patch": steps between patch starts
    decomposition_kernel: int = 25  # "xlstmtime": moving-average window of the trend
    head: str = "point"  # "point", "quantile", "normal", "studentt"
    loss: str = "mse"  # point head: "mse", "mae", "huber"
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    n_past: int = 0  # P
    n_future: int = 0  # F
    n_static: int = 0  # K
    # "mixer": the last n_channels past covariates are the C series forecast jointly
    # (their values at the window's times); batch["series"] is the window's own channel
    n_channels: int = 0
    # The RevIN scale and shift stay off: with them the loss is measured in units the
    # network can shrink by itself (the scale), so training lowers the loss without
    # forecasting better and early stopping watches a moving ruler.
    revin_affine: bool = False
    # The forecast = a linear map of the normalised lookback + the xLSTM's correction
    # (zero at the start), NLinear/RevIN style: training starts from the linear forecast.
    linear_path: bool = True
    # Future-known covariates over the horizon: "local" adds their step-wise effect (a
    # kernel-3 convolution along the horizon) to the linear path; "dense", how older
    # saved models read them, flattens all H x F values into the head (it over-fits a
    # noise covariate: docs/decisions.md).
    future_path: str = "local"
    n_models: int = 1  # > 1: an ensemble of members trained with different seeds
    backend: str = "auto"  # cell kernels: "auto" (Triton on CUDA), "triton", "torch"

    def validate(self) -> NetworkConfig:
        """Self, after checking every field; ValueError/TypeError naming the bad one."""
        check_params(NETWORK_CONSTRAINTS, {f: getattr(self, f) for f in NETWORK_CONSTRAINTS})
        check_network_shape(self.network, self.lookback, self.patch_len, self.num_blocks,
                            self.slstm_at, self.d_model, self.num_heads)
        return self

    @classmethod
    def from_dict(cls, values: dict) -> NetworkConfig:
        """The config saved as a JSON mapping (lists become tuples); :func:`build_network`
        validates it."""
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"network config holds unknown fields {sorted(unknown)}.")
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
        fields.setdefault("linear_path", False)  # saved before the linear path existed
        fields.setdefault("future_path", "dense")  # saved before the local path existed
        return cls(**fields)

    @property
    def n_patches(self) -> int:
        return (self.lookback - self.patch_len) // self.patch_stride + 1


def check_network_shape(network: str, lookback: int, patch_len: int, num_blocks: int,
                        slstm_at, d_model: int, num_heads: int) -> None:
    """The rules that tie several fields together."""
    if network in ("patch", "mixer") and lookback < patch_len:
        raise ValueError(f"lookback ({lookback}) must be at least patch_len "
                         f"({patch_len}). Raise lookback or lower patch_len.")
    if any(j >= num_blocks for j in slstm_at):
        raise ValueError(f"slstm_at must hold block indices in [0, {num_blocks}). "
                         f"Got {list(slstm_at)}.")
    if d_model % num_heads:
        raise ValueError(f"d_model ({d_model}) must be divisible by num_heads ({num_heads}).")


class _Forecaster(nn.Module):
    """Shared parts: RevIN on the target, static and future-covariate inputs, the head."""

    streaming = False  # True where a carried state can absorb new steps (XLSTMTime)

    def __init__(self, config: NetworkConfig, d_features: int):
        super().__init__()
        self.config = c = config
        self.revin = RevIN(1, affine=c.revin_affine)
        self.stack = XLSTMStack(c.d_model, c.num_blocks, slstm_at=c.slstm_at,
                                num_heads=c.num_heads, dropout=c.dropout, backend=c.backend)
        self.static = nn.Linear(c.n_static, c.d_model) if c.n_static else None
        # covariates in standard units of the fitted data (set_covariate_scaling)
        self.past_norm, self.future_norm, self.static_norm = (
            Standardize(n) for n in (c.n_past, c.n_future, c.n_static))
        # future-known covariates over the horizon act step by step: the effect at step j
        # is a kernel-3 convolution of their values at steps j-1..j+1 (zero at the start)
        local = c.n_future and c.future_path == "local"
        self.ahead = nn.Conv1d(c.n_future, 1, 3, padding=1) if local else None
        if self.ahead is not None:
            nn.init.zeros_(self.ahead.weight)
            nn.init.zeros_(self.ahead.bias)
        self.head = build_head(c.head, self._head_width(d_features), c.horizon, loss=c.loss,
                               quantiles=c.quantiles)
        self.linear = nn.Linear(c.lookback, c.horizon) if c.linear_path else None
        if self.linear is not None:  # start from the window mean, with no correction
            for layer in (self.linear, self.head.proj):
                nn.init.zeros_(layer.weight)
                nn.init.zeros_(layer.bias)

    def set_covariate_scaling(self, past, future, static) -> None:
        """Standardise the past (P,), future (F,) and static (K,) covariates with the
        given ``(loc, scale)`` pairs, e.g. from
        :func:`xlstm_ts.data.covariate_moments`; fixed, not trained."""
        for norm, (loc, scale) in zip((self.past_norm, self.future_norm, self.static_norm),
                                      (past, future, static), strict=True):
            norm.set_(loc, scale)

    def _static(self, batch) -> torch.Tensor:
        """The static covariates' embedding (B, 1, D), added to every token."""
        return self.static(self.static_norm(batch["static"])).unsqueeze(1)

    def _base(self, window: torch.Tensor) -> torch.Tensor | None:
        """The linear path's forecast (B, H) from the normalised lookback (B, L)."""
        return None if self.linear is None else self.linear(window)

    def _inputs(self, batch, stats=None) -> tuple[torch.Tensor, tuple]:
        """Per-step input features (B, S, 2 + P + F) of the S history steps and the RevIN
        statistics (computed over the history unless given)."""
        mask = batch["history_mask"]
        x = batch["history"].unsqueeze(-1)  # (B, S, 1)
        stats = self.revin.statistics(x, mask) if stats is None else stats
        y = self.revin.apply(x, stats, mask)
        parts = [y, mask.unsqueeze(-1).to(y.dtype)]
        if self.config.n_past:
            parts.append(self.past_norm(batch["past"]))
        if self.config.n_future:
            parts.append(self.future_norm(batch["future"][:, : x.shape[1]]))
        return torch.cat(parts, dim=-1), stats

    def _head_width(self, d_features: int) -> int:
        """Inputs of the head: the encoder's features (and, for ``future_path="dense"``,
        the H x F future covariates)."""
        c = self.config
        return d_features + (c.horizon * c.n_future if c.future_path == "dense" else 0)

    def _forecast(self, features: torch.Tensor, window: torch.Tensor,
                  ahead: torch.Tensor | None) -> torch.Tensor:
        """Head parameters from the encoder's ``features`` (B, d), on top of the linear
        path of the normalised ``window`` (B, L) and the step-wise effect of the
        future-known covariates ``ahead`` (B, H, F)."""
        base = self._base(window)
        if self.config.n_future and self.config.future_path == "dense":
            features = torch.cat([features, self.future_norm(ahead).flatten(1)], dim=-1)
        if self.ahead is not None:
            effect = self.ahead(self.future_norm(ahead).transpose(1, 2)).squeeze(1)  # (B, H)
            base = effect if base is None else base + effect
        return self.head(features, base)

    def normalize_target(self, target: torch.Tensor, stats) -> torch.Tensor:
        """Targets (B, H) into the units the head predicts in, in the dtype of
        ``target`` (pass float64 targets and statistics for yardsticks: the target of
        an all-zero window, whose std is the smallest positive float, overflows
        float32)."""
        y = (target.unsqueeze(-1) - stats[0]) / stats[1]
        if self.revin.weight is not None:
            y = y * self.revin.weight + self.revin.bias
        return y.squeeze(-1)

    def denormalize(self, values: torch.Tensor, stats) -> torch.Tensor:
        """Point forecasts (B, H) or quantiles (B, H, Q) back to data units."""
        squeeze = values.ndim == 2
        v = values.unsqueeze(-1) if squeeze else values
        out = self.revin.denormalize(v, stats)
        return out.squeeze(-1) if squeeze else out


class PatchXLSTM(_Forecaster):
    """RevIN -> patches of the lookback -> linear patch embedding (+ static) ->
    XLSTMStack over patch tokens -> flatten -> head (+ linear path + the future
    covariates' step-wise effect)."""

    def __init__(self, config: NetworkConfig):
        c = config
        super().__init__(c, c.n_patches * c.d_model)
        n_features = 2 + c.n_past + c.n_future
        self.embed = nn.Linear(c.patch_len * n_features, c.d_model)
        self.position = nn.Parameter(torch.zeros(c.n_patches, c.d_model))

    def forward(self, batch) -> tuple[torch.Tensor, tuple]:
        """Returns head parameters (normalised units) and the RevIN statistics."""
        c = self.config
        x, stats = self._inputs(batch)  # (B, L, C)
        patches = x.unfold(1, c.patch_len, c.patch_stride)  # (B, N, C, patch_len)
        tokens = self.embed(patches.flatten(2)) + self.position  # (B, N, D)
        if self.static is not None:
            tokens = tokens + self._static(batch)
        hidden = self.stack(tokens)  # (B, N, D)
        return self._forecast(hidden.flatten(1), x[..., 0], batch["future"][:, c.lookback:]), stats


class XLSTMTime(_Forecaster):
    """xLSTMTime-style: trailing moving-average decomposition of the normalised history
    into trend and seasonal parts -> linear per-step embedding -> XLSTMStack over the
    steps -> linear head on the last output (+ linear path + the future covariates'
    step-wise effect).

    Every part is causal, so the network can carry a per-series state and absorb new
    observations in O(new steps) (:meth:`encode`, :meth:`advance`, :meth:`head_from`):
    the state holds the stack's recurrent states, the last ``decomposition_kernel - 1``
    normalised values (for the moving average), the last output and the RevIN
    statistics of the window it was encoded from, which stay frozen while it advances.
    ``forward`` is ``encode`` + ``head_from`` on one training window.
    """

    streaming = True

    def __init__(self, config: NetworkConfig):
        c = config
        super().__init__(c, c.d_model)
        n_features = 3 + c.n_past + c.n_future  # seasonal, trend, mask, covariates
        self.embed = nn.Linear(n_features, c.d_model)
        self.norm = nn.LayerNorm(c.d_model)

    def forward(self, batch) -> tuple[torch.Tensor, tuple]:
        state = self.encode(batch)
        return self.head_from(state, batch["future"][:, batch["history"].shape[1]:])

    def encode(self, batch, stats_steps: int | None = None) -> dict[str, torch.Tensor]:
        """Encode the S history steps of ``batch`` from a zero state into a stream state.

        RevIN statistics come from the first ``stats_steps`` steps (default: all S), so
        re-encoding an anchor window plus later steps reproduces a state that was
        encoded from the anchor and then advanced over those steps.
        """
        x = batch["history"][:, :stats_steps].unsqueeze(-1)
        mask = batch["history_mask"][:, :stats_steps]
        stats = self.revin.statistics(x, mask)
        return self._run(batch, stats, tail=None, stack_state=None, window=None)

    def advance(self, state: dict[str, torch.Tensor], steps) -> dict[str, torch.Tensor]:
        """The stream state after T new steps: ``steps`` holds history (B, T),
        history_mask (B, T), past (B, T, P), future (B, T, F) and static (B, K)."""
        stats = (state["mean"], state["std"])
        stack_state = unpack_stack_state(state, len(self.stack.blocks))
        return self._run(steps, stats, tail=state["tail"], stack_state=stack_state,
                         window=state.get("window"))

    def head_from(self, state: dict[str, torch.Tensor], ahead: torch.Tensor | None):
        """Head parameters (normalised units) and RevIN statistics from a stream state;
        ``ahead`` (B, H, F) holds the future-known covariates over the horizon."""
        params = self._forecast(state["hidden"], state.get("window"), ahead)
        return params, (state["mean"], state["std"])

    def _run(self, batch, stats, tail, stack_state, window) -> dict[str, torch.Tensor]:
        x, stats = self._inputs(batch, stats)  # (B, T, 2 + P + F): y, mask, covariates
        y = x[..., 0]
        k = self.config.decomposition_kernel
        if tail is None:  # a fresh window: replicate its first value to the left
            tail = y[:, :1].expand(-1, k - 1)
        padded = torch.cat([tail, y], dim=1)  # (B, k - 1 + T)
        trend = F_.avg_pool1d(padded.unsqueeze(1), k, stride=1).squeeze(1)  # (B, T)
        features = torch.cat([(y - trend).unsqueeze(-1), trend.unsqueeze(-1), x[..., 1:]], dim=-1)
        tokens = self.norm(self.embed(features))  # (B, T, D)
        if self.static is not None:
            tokens = tokens + self._static(batch)
        hidden, stack_state = self.stack(tokens, stack_state, return_state=True)  # (B, T, D)
        out = {"hidden": hidden[:, -1], "mean": stats[0], "std": stats[1],
               "tail": padded[:, padded.shape[1] - (k - 1):], **pack_stack_state(stack_state)}
        if self.linear is not None:  # the last L normalised values, for the linear path
            L = self.config.lookback
            before = y.new_zeros(y.shape[0], L) if window is None else window
            out["window"] = torch.cat([before, y], dim=1)[:, -L:]
        return {name: _row_major(value) for name, value in out.items()}


def _row_major(t: torch.Tensor) -> torch.Tensor:
    """``t`` with row-major strides, copied where it is a view with others (the tail of
    a (B, k - 1 + T) buffer, a conv state cut from a longer one): the stream state then
    has one layout whatever the number of steps, and a compiled step meets the strides
    it was compiled for on its next call (dynamo guards on strides, even of size-1
    dims, which ``.contiguous()`` leaves) instead of compiling again."""
    strides, size = [], 1
    for n in reversed(t.shape):
        strides.append(size)
        size *= n
    if t.stride() == tuple(reversed(strides)):
        return t
    return t.clone(memory_format=torch.contiguous_format)


def pack_stack_state(states: list) -> dict[str, torch.Tensor]:
    """Flatten XLSTMStack states (per block: (conv state, cell state tuple)) into named
    tensors with the series in dim 0, so they can be sliced, merged and saved."""
    flat = {}
    for j, (conv, cell) in enumerate(states):
        if conv is not None:
            flat[f"stack.{j}.conv"] = conv
        for n, part in enumerate(cell):
            flat[f"stack.{j}.cell.{n}"] = part
    return flat


def unpack_stack_state(flat: dict[str, torch.Tensor], num_blocks: int) -> list:
    """Inverse of :func:`pack_stack_state`."""
    states = []
    for j in range(num_blocks):
        cell, n = [], 0
        while f"stack.{j}.cell.{n}" in flat:
            cell.append(flat[f"stack.{j}.cell.{n}"])
            n += 1
        states.append((flat.get(f"stack.{j}.conv"), tuple(cell)))
    return states


class Ensemble(nn.Module):
    """``config.n_models`` members of one architecture, trained apart (different seeds),
    combined by the element-wise median of their head parameters in normalised units
    (the mean of the two middle members for an even count).

    Point forecasts are the members' median. Quantile heads give the median of each
    level across members (element-wise medians of increasing sequences stay
    increasing); distribution heads the median loc and scale. The members share the
    RevIN statistics (no learnable affine), so medians in normalised units equal
    medians in data units. Streaming networks stream every member; the stream state
    holds each member's under the prefix ``m{k}.``.
    """

    def __init__(self, config: NetworkConfig, members: list[nn.Module] | None = None):
        super().__init__()
        self.config = config
        member = replace(config, n_models=1)
        self.members = nn.ModuleList(members if members is not None else [
            _ARCHITECTURES[config.network](member) for _ in range(config.n_models)])
        self.streaming = self.members[0].streaming

    @property
    def head(self):
        return self.members[0].head

    def normalize_target(self, target, stats):
        """As the members' (they share their normalisation)."""
        return self.members[0].normalize_target(target, stats)

    def denormalize(self, values, stats):
        """As the members' (they share their normalisation)."""
        return self.members[0].denormalize(values, stats)

    @staticmethod
    def _median(params: list[torch.Tensor]) -> torch.Tensor:
        return torch.quantile(torch.stack(params), 0.5, dim=0)

    def forward(self, batch):
        outs = [m(batch) for m in self.members]
        return self._median([p for p, _ in outs]), outs[0][1]

    def encode(self, batch, stats_steps: int | None = None) -> dict[str, torch.Tensor]:
        """Every member's stream state, keys prefixed ``m{k}.``."""
        return {f"m{k}.{name}": v for k, m in enumerate(self.members)
                for name, v in m.encode(batch, stats_steps).items()}

    def _member_state(self, state: dict, k: int) -> dict:
        prefix = f"m{k}."
        return {name[len(prefix):]: v for name, v in state.items() if name.startswith(prefix)}

    def advance(self, state: dict, steps) -> dict[str, torch.Tensor]:
        """Every member's state advanced over ``steps``."""
        return {f"m{k}.{name}": v for k, m in enumerate(self.members)
                for name, v in m.advance(self._member_state(state, k), steps).items()}

    def head_from(self, state: dict, ahead):
        """The median head parameters of the members' states, and the shared statistics."""
        outs = [m.head_from(self._member_state(state, k), ahead)
                for k, m in enumerate(self.members)]
        return self._median([p for p, _ in outs]), outs[0][1]


class MixerXLSTM(PatchXLSTM):
    """The patch network plus mixing across the series that share the window's times
    (xLSTM-Mixer style): each channel's window, normalised by its own statistics, is
    embedded as one token (+ a learned channel embedding); an xLSTM stack runs over the
    channel axis in two views, forward and reversed, and the window's own channel
    token joins the head's input. The linear path and the RevIN of the target are the
    patch network's, so training starts from the same linear forecast.

    Input: ``batch["past"][..., -C:]`` (B, L, C) the channels' values, ``batch["series"]``
    (B,) the window's own channel index."""

    def __init__(self, config: NetworkConfig):
        c = config
        if c.n_channels < 2 or c.n_past < c.n_channels:
            raise ValueError(f"network='mixer' forecasts two or more series jointly; got "
                             f"n_channels={c.n_channels} (n_past={c.n_past}).")
        super().__init__(c)
        self.head = build_head(c.head, self._head_width(c.n_patches * c.d_model + c.d_model),
                               c.horizon, loss=c.loss, quantiles=c.quantiles)
        if self.linear is not None:
            nn.init.zeros_(self.head.proj.weight)
            nn.init.zeros_(self.head.proj.bias)
        # the patch tokens see the target and the other covariates, not the raw channels
        n_features = 2 + c.n_past - c.n_channels + c.n_future
        self.embed = nn.Linear(c.patch_len * n_features, c.d_model)
        self.channel_embed = nn.Linear(c.lookback, c.d_model)
        self.channel_id = nn.Parameter(torch.zeros(c.n_channels, c.d_model))
        self.mix = XLSTMStack(c.d_model, 1, num_heads=c.num_heads, dropout=c.dropout,
                              backend=c.backend)

    def _inputs(self, batch, stats=None) -> tuple[torch.Tensor, tuple]:
        own = self.config.n_past - self.config.n_channels
        return super()._inputs({**batch, "past": batch["past"][..., :own]}, stats)

    def forward(self, batch) -> tuple[torch.Tensor, tuple]:
        c = self.config
        x, stats = self._inputs(batch)  # (B, L, 2 + P - C + F)
        patches = x.unfold(1, c.patch_len, c.patch_stride)
        tokens = self.embed(patches.flatten(2)) + self.position
        if self.static is not None:
            tokens = tokens + self._static(batch)
        hidden = self.stack(tokens).flatten(1)  # (B, N * D)
        channels = batch["past"][..., -c.n_channels:]  # (B, L, C)
        mean, std = self.revin.statistics(channels)  # each channel by its own window
        views = self.channel_embed(((channels - mean) / std).transpose(1, 2)) + self.channel_id
        # two views (the channel axis forward and reversed) in one batched pass
        both = self.mix(torch.cat([views, views.flip(1)]))  # (2B, C, D)
        mixed = both[: len(views)] + both[len(views):].flip(1)  # (B, C, D)
        own = mixed[torch.arange(len(mixed)), batch["series"]]  # (B, D)
        features = torch.cat([hidden, own], dim=-1)
        return self._forecast(features, x[..., 0], batch["future"][:, c.lookback:]), stats


_ARCHITECTURES = {"patch": PatchXLSTM, "xlstmtime": XLSTMTime, "mixer": MixerXLSTM}


def build_network(config: NetworkConfig, members: list[nn.Module] | None = None
                  ) -> nn.Module:
    """The network named by ``config.network`` (an :class:`Ensemble` of ``n_models``
    of them, or of the trained ``members``, when ``n_models > 1``); the one place a
    config is checked before a network is built."""
    config.validate()
    if config.n_models > 1 or members is not None:
        return Ensemble(config, members)
    return _ARCHITECTURES[config.network](config)
