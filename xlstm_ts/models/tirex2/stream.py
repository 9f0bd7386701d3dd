"""Streaming a TiRex-2 network: new observations advance carried recurrent states
instead of re-encoding the context.

A stream is anchored on each series' last ``context_len`` steps, as a forecast reads
them. The anchor fixes each row's scaling statistics and which target rows are
forecast in differences; new steps are scaled with those statistics and appended.
Forecasts equal re-encoding the anchor plus every new step (no context cut) with the
anchor's statistics, to float32 round-off. They drift from a fresh forecast (the last
``context_len`` steps, scaled anew) as the anchor ages; re-anchor by starting a new
stream.

Patches are cut back from the last step, so each new step moves every patch boundary.
The stream keeps the block states of each phase (history length mod ``patch_size``)
it has been read at: the first read of a phase encodes the history once, as a
forecast does; later reads advance that phase over the patches completed since, a
fixed cost per patch. Updates of a fixed number of steps use one or a few phases; the
states of every phase are kept while they fit in ``MAX_STATE_BYTES``, the least
recently read dropped first (a dropped phase is encoded again when read).

Only forward-in-time rows stream: targets and past-only covariates. Rows of known
covariates also run backward in time, so a new step changes every token; their
series are forecast by re-encoding (:func:`~.forecast.forecast`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from .forecast import BAND, BandConfig, SeriesInput, calibrate, flipped, pack, unflip
from .network import TiRex2Network

MAX_STATE_BYTES = 2 ** 30  # cached phase states per stream, all phases together


@dataclass(frozen=True)
class _Phase:
    position: int  # steps of history its patch grid covers (it ends there)
    states: list  # one cell state per block, after the last token
    hidden: torch.Tensor  # (R, D) the stack's output at the last token

    @property
    def nbytes(self) -> int:
        tensors = [t for state in self.states for t in state] + [self.hidden]
        return sum(t.numel() * t.element_size() for t in tensors)


@dataclass(frozen=True)
class TiRex2Stream:
    """Carried state of a batch of series. Rows as :func:`~.forecast.pack` lays them
    out (each series' target rows, then its past-only covariates), followed by the
    sign-flipped copies where the checkpoint flips.

    Build with :meth:`start`; :meth:`update` returns the stream advanced over new
    steps; :meth:`forecast` reads it. ``to_state`` / ``from_state`` convert to a flat
    dict of tensors (saved with ``torch.save``, read with ``weights_only=True``)."""

    group: torch.Tensor  # (R,) series index of each row (flipped copies: + n_series)
    target: torch.Tensor  # (R,) bool
    targets: torch.Tensor  # (n_series,) target rows per series
    loc: torch.Tensor  # (R, 1) frozen scaling statistics
    scale: torch.Tensor  # (R, 1)
    binary: torch.Tensor  # (R, 1) bool: a 0/1 row, left unscaled
    diffed: torch.Tensor  # (R,) bool: forecast in first differences
    previous: torch.Tensor  # (R,) last raw value (NaN if missing): the next difference's base
    level: torch.Tensor  # (R,) last observed raw value: a differenced forecast's start
    history: torch.Tensor  # (R, T) scaled network input since the anchor's first step
    sign_flip: bool
    phases: dict = field(default_factory=dict)  # history length mod P -> _Phase

    # ------------------------------------------------------------------ build

    @classmethod
    @torch.no_grad()
    def start(cls, net: TiRex2Network, series: list[SeriesInput], *,
              tta_diff: bool | None = None, tta_sign_flip: bool | None = None
              ) -> TiRex2Stream:
        """A stream anchored on the series' histories (each cut or NaN-padded on the
        left to ``context_len`` steps). Series with future-known covariates cannot
        stream: ValueError."""
        if any(s.future_covariates is not None for s in series):
            raise ValueError("series with future-known covariates cannot be streamed: "
                             "those covariates run backward in time, so every new step "
                             "changes every token; forecast them by re-encoding.")
        cfg = net.config
        tta_diff = cfg.tta_diff if tta_diff is None else tta_diff
        sign_flip = cfg.tta_sign_flip if tta_sign_flip is None else tta_sign_flip
        series = [SeriesInput(*(None if t is None else t.float().cpu()
                                for t in (s.target, s.past_covariates, None)))
                  for s in series]
        copies = [series, [flipped(s) for s in series]] if sign_flip else [series]
        parts = [_anchor(net, copy, tta_diff, offset=k * len(series))
                 for k, copy in enumerate(copies)]
        columns = {name: torch.cat([p[name] for p in parts]) for name in parts[0]}
        history, (loc, scale, binary) = net.scaler.scale(columns.pop("x"))
        if binary is None:  # all-False flags scale as None does
            binary = torch.zeros_like(loc, dtype=torch.bool)
        stream = cls(loc=loc, scale=scale, binary=binary, history=history,
                     sign_flip=sign_flip, targets=torch.tensor([s.target.shape[0]
                                                                for s in series]),
                     **columns)
        return stream._read(net)

    @torch.no_grad()
    def update(self, net: TiRex2Network, new: list[SeriesInput]) -> TiRex2Stream:
        """The stream with ``new`` appended: per series (in the order of :meth:`start`)
        the next n steps of its targets (V_t, n) and past-only covariates (V_p, n), the
        same n for every series, NaN where missing. The current phase is brought up to
        date (a fixed cost per completed patch, or one encoding of the history for a
        phase not read before); the stream it was called on is left as it was."""
        raw = self._raw_rows(new)
        if self.sign_flip:
            raw = torch.cat([raw, -raw])
        before = torch.cat([self.previous[:, None], raw], dim=1)
        values = torch.where(self.diffed[:, None], before[:, 1:] - before[:, :-1], raw)
        observed = ~raw.isnan()
        last = raw.gather(1, observed.long().cumsum(1).argmax(1, keepdim=True)).squeeze(1)
        scaled, _ = net.scaler.scale(values, (self.loc, self.scale, self.binary))
        stream = replace(self, history=torch.cat([self.history, scaled], dim=1),
                         previous=raw[:, -1], phases=dict(self.phases),
                         level=torch.where(observed.any(1), last, self.level))
        return stream._read(net)

    # ------------------------------------------------------------------ read

    @torch.no_grad()
    def forecast(self, net: TiRex2Network, horizon: int,
                 band: BandConfig = BAND) -> list[torch.Tensor]:
        """Quantile forecasts (V_t, Q, horizon) per series from the stream's end, as
        :func:`~.forecast.forecast` makes them; past ``future_len`` the median rolls
        out through :meth:`update`."""
        cfg = net.config
        if horizon < 1:
            raise ValueError(f"horizon must be at least 1. Got {horizon}.")
        stream, pieces, done = self, None, 0
        while True:
            step = min(cfg.future_len, horizon - done)
            block = stream._block(net, step, band)
            pieces = block if pieces is None else [torch.cat([a, b], -1)
                                                   for a, b in zip(pieces, block, strict=True)]
            done += step
            if done >= horizon:
                return pieces
            # the median joins the history as if observed; past-only covariates unknown
            rows = self._rows_per_series()
            stream = stream.update(net, [
                SeriesInput(b[:, cfg.median_index],
                            b.new_full((rows[k] - len(b), b.shape[-1]), float("nan")))
                for k, b in enumerate(block)])

    def _block(self, net: TiRex2Network, horizon: int, band: BandConfig) -> list:
        """One pass: quantiles (V_t, Q, horizon <= future_len) per series."""
        P = net.config.patch_size
        phase = self.phases[self.history.shape[1] % P]
        h = phase.hidden[:, None]
        ahead = math.ceil(horizon / P) - 1  # token l forecasts patch l + 1
        if ahead:
            empty = net.embed(self.history.new_full((len(h), ahead * P), float("nan")))
            future, _ = net.advance(empty, self.group, self.target, phase.states)
            h = torch.cat([h, future], dim=1)
        state = (self.loc, self.scale, self.binary)
        quantiles = net.scaler.unscale(net.head(h), state)[self.target][..., :horizon]
        split = self.targets.tolist()
        diffed, level = self.diffed[self.target], self.level[self.target]
        halves = []
        for copy in range(2 if self.sign_flip else 1):  # the originals, then the flipped
            rows = slice(copy * sum(split), (copy + 1) * sum(split))
            halves.append(calibrate(quantiles[rows], list(diffed[rows].split(split)),
                                    list(level[rows].split(split)),
                                    net.config.median_index, band))
        return unflip(*halves, net.quantiles) if self.sign_flip else halves[0]

    def _read(self, net: TiRex2Network) -> TiRex2Stream:
        """This stream with the phase of its current length up to date (in place: a
        cache; the numbers a forecast reads do not change)."""
        P = net.config.patch_size
        T = self.history.shape[1]
        key = T % P
        phase = self.phases.pop(key, None)
        if phase is None:  # encode the whole history on this phase's patch grid
            phase = _Phase(0, None, None)
            tokens = net.embed(self.history)
        else:
            tokens = net.embed(self.history[:, phase.position:])
        if tokens.shape[1]:
            h, states = net.advance(tokens, self.group, self.target, phase.states)
            phase = _Phase(T, states, h[:, -1])
        self.phases[key] = phase  # the most recently read last
        while sum(p.nbytes for p in self.phases.values()) > MAX_STATE_BYTES \
                and len(self.phases) > 1:
            self.phases.pop(next(iter(self.phases)))
        return self

    def _rows_per_series(self) -> list[int]:
        """Rows (targets and past covariates) of each series, originals only."""
        return torch.bincount(self.group, minlength=len(self.targets))[:len(self.targets)].tolist()

    def _raw_rows(self, new: list[SeriesInput]) -> torch.Tensor:
        """The new steps as rows (R_original, n) in the stream's row order."""
        n_series = len(self.targets)
        if len(new) != n_series:
            raise ValueError(f"update() needs new steps for each of the {n_series} streamed "
                             f"series, in order; got {len(new)}.")
        rows, held = [], self._rows_per_series()
        for k, s in enumerate(new):
            parts = [s.target] + ([] if s.past_covariates is None else [s.past_covariates])
            rows.append(torch.cat([p.float().cpu() for p in parts]))
            if rows[-1].shape[0] != held[k]:
                raise ValueError(f"series {k}: {rows[-1].shape[0]} rows of new steps, but "
                                 f"the stream holds {held[k]}.")
        steps = {r.shape[1] for r in rows}
        if len(steps) != 1 or 0 in steps:
            raise ValueError(f"update() needs the same number (at least 1) of new steps for "
                             f"every streamed series; got {sorted(steps)}.")
        return torch.cat(rows)

    # ------------------------------------------------------------------ save

    def to_state(self) -> dict[str, torch.Tensor]:
        """A flat dict of tensors holding the stream (phase states included)."""
        out = {name: getattr(self, name) for name in _TENSORS}
        out["sign_flip"] = torch.tensor(self.sign_flip)
        for key, phase in self.phases.items():
            out[f"phase.{key}.position"] = torch.tensor(phase.position)
            out[f"phase.{key}.hidden"] = phase.hidden
            for k, state in enumerate(phase.states):
                for j, t in enumerate(state):
                    out[f"phase.{key}.{k}.{j}"] = t
        return out

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> TiRex2Stream:
        """The stream :meth:`to_state` wrote."""
        phases = {}
        for key in sorted({int(k.split(".")[1]) for k in state if k.startswith("phase.")}):
            blocks = {}
            for name, t in state.items():
                parts = name.split(".")
                if parts[0] == "phase" and int(parts[1]) == key and len(parts) == 4:
                    blocks.setdefault(int(parts[2]), {})[int(parts[3])] = t
            phases[key] = _Phase(int(state[f"phase.{key}.position"]),
                                 [tuple(b[j] for j in sorted(b)) for _, b in
                                  sorted(blocks.items())],
                                 state[f"phase.{key}.hidden"])
        return cls(**{name: state[name] for name in _TENSORS},
                   sign_flip=bool(state["sign_flip"]), phases=phases)


_TENSORS = ("group", "target", "targets", "loc", "scale", "binary", "diffed", "previous",
            "level", "history")


def _anchor(net: TiRex2Network, series: list[SeriesInput], tta_diff: bool,
            offset: int) -> dict[str, torch.Tensor]:
    """The rows of ``series`` at the network's context length (:func:`pack`), with
    each row's group, target flag, difference flag and last raw and observed values."""
    batch = pack(net, series, 0, tta_diff, pad_context=True)
    diffed, previous, level = [], [], []
    for s, diff, last in zip(series, batch.diffed, batch.last, strict=True):
        covariates = 0 if s.past_covariates is None else s.past_covariates.shape[0]
        diffed += [diff, torch.zeros(covariates, dtype=torch.bool)]
        raw = s.target[:, -1]
        previous += [raw] if covariates == 0 else [raw, s.past_covariates[:, -1]]
        level += [last, torch.full((covariates,), float("nan"))]
    return {"x": batch.x[:, :net.config.context_len], "group": batch.group + offset,
            "target": batch.target, "diffed": torch.cat(diffed),
            "previous": torch.cat(previous), "level": torch.cat(level)}

