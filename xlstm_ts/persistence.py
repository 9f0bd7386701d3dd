"""The saved-model format: a directory of ``config.json`` and tensor files.

``config.json`` holds the estimator's parameters, the network config and the
panel's metadata; ``weights.pt`` the network's state dict, ``history.pt`` the last
``lookback`` steps of every series (and the interval calibration), ``stream.pt`` the
carried stream state. A pretrained network (``network="tirex2"``) is saved instead
as a checkpoint folder ``pretrained/`` (``config.json`` and ``model.safetensors``,
the fine-tuned weights where ``fit`` fine-tuned) and its history is its context.
Tensors are read with ``torch.load(weights_only=True)`` or safetensors: nothing
pickled is ever executed. A save is staged in a sibling directory and
swapped in, so a failing save leaves the previous model whole. Everything read
back is checked as strictly as constructor arguments; a damaged directory gives
one ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ._checks import check_params
from ._io import atomic_directory
from ._version import __version__
from .calibration import BandCalibration
from .data import Columns, Frequency, SeriesData, last_windows
from .data.freq import KINDS
from .models import NetworkConfig, build_network
from .models.tirex2 import load_checkpoint, save_checkpoint
from .parameters import FORECASTER_CONSTRAINTS

FORMAT_VERSION = 1
_TENSOR_FILES = ("weights.pt", "history.pt", "stream.pt")


@dataclass
class SavedModel:
    """What a model directory holds, checked and rebuilt (``config`` None: a pretrained
    network, whose own config it carries)."""

    params: dict
    config: NetworkConfig | None
    network: torch.nn.Module
    data: SeriesData
    loss_history: list | None = None
    calibration: BandCalibration | None = None
    stream_state: dict | None = None
    extra: dict | None = None


class DamagedModelError(ValueError):
    """A model directory that cannot be read back."""


def save_model(path: str | os.PathLike, params: dict, config: NetworkConfig | None,
               network: torch.nn.Module, data: SeriesData, *,
               loss_history: list | None = None, calibration: BandCalibration | None = None,
               stream_state: dict | None = None, extra: dict | None = None) -> None:
    """Write a model directory at ``path`` (staged, then swapped in); ``config`` None
    for a pretrained network (:class:`TiRex2Network`)."""
    ids, id_dtype = _ids_to_json(data.ids)
    pretrained = config is None
    lookback = network.config.context_len if pretrained else config.lookback
    document = json.dumps({
        "format_version": FORMAT_VERSION, "xlstm_ts_version": __version__,
        "params": jsonable(params),
        "network": {"pretrained": "tirex2"} if pretrained else jsonable(asdict(config)),
        "extra": jsonable(extra or {}),
        "freq": None if data.freq is None else [data.freq.kind, data.freq.step],
        "ids": ids, "id_dtype": id_dtype, "kind": data.kind,
        "static_categories": jsonable(data.static_categories),
        "calendar": list(data.calendar), "columns": jsonable(asdict(data.columns)),
        "time_dtype": str(data.times.dtype), "time_zone": data.time_zone,
        "dates": data.dates,
        "loss_history": jsonable(loss_history),
    }, indent=2)  # serialised before anything is written: a failure leaves nothing behind
    keep = last_windows(data, lookback, torch.zeros(data.n_series, 0, data.future.shape[1]))
    times = data.times
    times = (times.astype("datetime64[us]").astype(np.int64) if times.dtype.kind == "M"
             else times.astype(np.int64))
    tensors = {"lengths": torch.from_numpy(data.lengths), "times": torch.from_numpy(times),
               "history": keep["history"], "history_mask": keep["history_mask"],
               "past": keep["past"], "future": keep["future"], "static": data.static}
    if calibration is not None:
        tensors.update({k: torch.from_numpy(v) for k, v in calibration.to_arrays().items()})

    def write(staging: Path) -> None:
        if pretrained:
            save_checkpoint(network, staging / "pretrained")
        else:
            torch.save(network.state_dict(), staging / "weights.pt")
        torch.save(tensors, staging / "history.pt")
        if stream_state is not None:
            torch.save(stream_state, staging / "stream.pt")
        (staging / "config.json").write_text(document)

    atomic_directory(path, write)


def load_model(path: str | os.PathLike) -> SavedModel:
    """Read and check a model directory written by :func:`save_model`."""
    path = Path(path)
    if not (path / "config.json").is_file():
        raise DamagedModelError(f"{path} is not an xlstm-ts model directory (no config.json).")
    try:
        document = json.loads((path / "config.json").read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise _damaged(path, "config.json", err) from None
    if not isinstance(document, dict):
        raise _damaged(path, "config.json", TypeError("not a JSON object"))
    version = document.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} holds model format version {version!r}; this xlstm-ts "
                         f"({__version__}) reads version {FORMAT_VERSION}. Re-save the model "
                         f"with a matching xlstm-ts.")
    try:
        params = {k: tuple(v) if isinstance(v, list) else v
                  for k, v in dict(document["params"]).items()}
        unknown = set(params) - set(FORECASTER_CONSTRAINTS)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        check_params(FORECASTER_CONSTRAINTS, params)
        pretrained = document["network"] == {"pretrained": "tirex2"}
        if not pretrained:
            config = NetworkConfig.from_dict(document["network"])
            network = build_network(config)
            lookback = config.lookback
            if params.get("lookback") not in (None, config.lookback) or \
                    params.get("horizon") != config.horizon:
                raise ValueError("params and network disagree on lookback or horizon")
    except (KeyError, TypeError, ValueError) as err:
        raise _damaged(path, "config.json", err) from None
    if pretrained:
        config = None
        try:
            network = load_checkpoint(path / "pretrained")
        except ValueError as err:
            raise _damaged(path, "pretrained", err) from None
        lookback = network.config.context_len
    else:
        weights = _load_tensors(path, "weights.pt")
        try:
            _load_weights(network, weights)
        except (RuntimeError, TypeError, AttributeError) as err:
            raise _damaged(path, "weights.pt", err) from None
    tensors = _load_tensors(path, "history.pt")
    try:
        data = _history_from(document, tensors, lookback)
    except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as err:
        raise _damaged(path, "history.pt", err) from None
    stream = _load_tensors(path, "stream.pt") if (path / "stream.pt").exists() else None
    if "conformal_errors" in tensors:  # written before bands were calibrated in spreads
        warnings.warn(f"{path}: the conformal errors saved by an older xlstm-ts are not "
                      f"read; call conformalize(df) again for calibrated bands.",
                      UserWarning, stacklevel=3)
    try:
        calibration = BandCalibration.from_arrays(
            {k: v.numpy() for k, v in tensors.items() if k.startswith("band_")})
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise _damaged(path, "history.pt", err) from None
    return SavedModel(params=params, config=config, network=network.eval(), data=data,
                      loss_history=document.get("loss_history"),
                      extra=document.get("extra") or {},
                      calibration=calibration,
                      stream_state=stream)


def _damaged(path: Path, name: str, err: BaseException) -> DamagedModelError:
    return DamagedModelError(f"{path / name}: the model directory is damaged "
                             f"({type(err).__name__}: {err}). Save the model again.")


def _load_tensors(path: Path, name: str) -> dict:
    try:
        value = torch.load(path / name, map_location="cpu", weights_only=True)
    except Exception as err:  # random or truncated bytes fail in many ways; all mean damage
        raise _damaged(path, name, err) from None
    if not isinstance(value, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in value.values()):
        raise _damaged(path, name, TypeError("not a mapping of tensors"))
    return value


def _history_from(document: dict, tensors: dict, lookback: int) -> SeriesData:
    """Rebuild the saved last ``lookback`` steps of each series as a SeriesData, checking
    every shape and value against the config."""
    lengths = tensors["lengths"].numpy()
    n = len(lengths)
    ids = _ids_from_json(document["ids"], document.get("id_dtype"))
    if len(ids) != n or len(set(ids.tolist())) != n:
        raise ValueError(f"{len(ids)} ids (unique ones required) for {n} series")
    if (lengths < 1).any():
        raise ValueError("a series of length < 1")
    for key in ("history", "history_mask", "past", "future"):
        if tensors[key].shape[:2] != (n, lookback if key != "future" else
                                      tensors[key].shape[1]):
            raise ValueError(f"{key} has shape {tuple(tensors[key].shape)}, expected "
                             f"({n}, {lookback}, ...) for lookback {lookback}")
    freq = None
    if document["freq"] is not None:
        kind, step = document["freq"]
        if kind not in KINDS or isinstance(step, bool) \
                or not isinstance(step, int) or step < 1:
            raise ValueError(f"frequency {document['freq']!r} (a kind and a step >= 1)")
        freq = Frequency(kind, step)
    kept = np.minimum(lengths, lookback)
    start = lookback - kept
    rows = torch.cat([torch.arange(s, lookback) + j * lookback for j, s in enumerate(start)])
    flat = {k: tensors[k].reshape(n * lookback, *tensors[k].shape[2:])[rows]
            for k in ("history", "past")}
    future = tensors["future"][:, :lookback].reshape(n * lookback, -1)[rows]
    observed = tensors["history_mask"].reshape(-1)[rows]
    all_ptr = np.concatenate([[0], np.cumsum(lengths)])
    keep_rows = np.concatenate([np.arange(e - k, e) for e, k in zip(all_ptr[1:], kept,
                                                                    strict=True)])
    times = tensors["times"].numpy()[keep_rows]
    if document["time_dtype"].startswith("datetime64"):
        times = times.astype("datetime64[us]")
    cols = document["columns"]
    columns = Columns(cols["id_col"], cols["time_col"], cols["target_col"],
                      tuple(cols["future"]), tuple(cols["past"]), tuple(cols["static"]))
    return SeriesData(
        ids=ids, indptr=np.concatenate([[0], np.cumsum(kept)]).astype(np.int64),
        times=times, target=flat["history"], observed=observed, past=flat["past"],
        future=future, static=tensors["static"], freq=freq, columns=columns,
        kind=document["kind"], static_categories=document["static_categories"],
        calendar=tuple(document["calendar"]), time_zone=document.get("time_zone"),
        dates=bool(document.get("dates", False)))


def _ids_to_json(ids: np.ndarray) -> tuple[list, str]:
    """Ids as JSON values and the dtype that restores them exactly."""
    if ids.dtype.kind == "M":
        return ids.astype("datetime64[us]").astype(np.int64).tolist(), "datetime64[us]"
    if ids.dtype.kind in "iuf":
        return ids.tolist(), str(ids.dtype)
    values = ids.tolist()
    if all(isinstance(v, str) for v in values):
        return values, "object"
    raise TypeError(f"series ids of type {type(values[0]).__name__} cannot be saved; use "
                    f"strings, integers or datetimes as ids.")


def _ids_from_json(values: list, dtype: str | None) -> np.ndarray:
    if dtype is None:  # written before ids kept their type
        return np.array(values, dtype=object)
    if dtype == "object":
        if not all(isinstance(v, str) for v in values):
            raise ValueError("ids must be strings")
        return np.array(values, dtype=object)
    if dtype == "datetime64[us]":
        return np.array(values, dtype=np.int64).astype("datetime64[us]")
    if dtype not in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                     "float32", "float64"):
        raise ValueError(f"unknown id dtype {dtype!r}")
    return np.array(values, dtype=dtype)


def jsonable(value):
    """Parameters as JSON values: tuples as lists, numpy scalars as numbers, paths as
    strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


_COVARIATE_NORMS = ("past_norm", "future_norm", "static_norm")


def _load_weights(network, weights: dict) -> None:
    """``weights`` into ``network``. Models saved before covariates were standardised
    lack those buffers (``*_norm.loc`` / ``*_norm.scale``): they keep the identity,
    which is how they were trained; any other missing or unexpected key is an error."""
    missing, unexpected = network.load_state_dict(weights, strict=False)
    other = [k for k in missing if "." not in k or k.split(".")[-2] not in _COVARIATE_NORMS]
    if unexpected or other:
        raise RuntimeError(f"weights do not fit the network: missing {other}, "
                           f"unexpected {list(unexpected)}")
