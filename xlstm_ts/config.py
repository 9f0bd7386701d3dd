"""YAML configs for the command line, validated into typed sections.

Every key is checked: unknown keys and wrong types are rejected with the key path
(``model.lookbak: unknown key``), so a typo never silently falls back to a
default. ``model`` takes any :class:`XLSTMForecaster` argument. Relative file paths
in a config are relative to the config file's folder, so a config runs the same from
any working directory (a cron job's, a notebook's).
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from ._checks import check_params
from .parameters import FORECASTER_CONSTRAINTS


class ConfigError(ValueError):
    """A config file or override that does not validate; the message names the key path."""


@dataclass
class DataConfig:
    path: str = ""  # CSV or Parquet file
    # "long": (id, time, target) rows; "wide": time + one column per series;
    # "rows": one row per series, id then values in time order (M4 files)
    layout: str = "long"
    id_col: str = "unique_id"
    time_col: str = "ds"
    target_col: str = "y"
    static_path: str | None = None


@dataclass
class BacktestConfig:
    n_windows: int = 3
    step: int | None = None
    refit: bool = False


@dataclass
class TuningConfig:
    n_trials: int = 20
    timeout: float | None = None
    metric: str = "mae"
    storage: str | None = None
    study_name: str | None = None
    pruner: str | None = "median"
    sampler: str = "tpe"
    search_space: dict | str | None = None


@dataclass
class TrackingConfig:
    enabled: bool = False
    uri: str | None = None
    experiment: str = "xlstm-ts"
    registered_model_name: str | None = None


@dataclass
class PredictConfig:
    model: str | None = None  # model dir, runs:/... or models:/... (--model overrides)
    horizon: int | None = None  # default: the trained horizon
    as_of: str | None = None  # ignore input rows after this time
    update: bool = False  # absorb the input as new observations and save the model back
    future: str | None = None  # future-known covariates over the horizon (--future overrides)


@dataclass
class OutputConfig:
    model_dir: str = "outputs/model"
    forecasts: str = "outputs/forecasts.csv"
    backtest: str = "outputs/backtest.csv"


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: dict = field(default_factory=dict)
    backtest: BacktestConfig = field(default_factory=BacktestConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    predict: PredictConfig = field(default_factory=PredictConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def tracking_arg(self):
        """The ``tracking=`` argument for fit/backtest/tune (None when disabled)."""
        t = self.tracking
        if not t.enabled:
            return None
        return {"experiment": t.experiment, **({"uri": t.uri} if t.uri else {})}


_SECTIONS = {"data": DataConfig, "backtest": BacktestConfig, "tuning": TuningConfig,
             "tracking": TrackingConfig, "predict": PredictConfig, "output": OutputConfig}


def _type_ok(value: Any, annotation: str) -> bool:
    allowed = {"str": str, "int": int, "float": (int, float), "bool": bool, "dict": dict,
               "None": type(None)}
    for part in annotation.replace(" ", "").split("|"):
        kind = allowed.get(part)
        if kind is None:
            continue
        if part in ("int", "float") and isinstance(value, bool):
            continue
        if isinstance(value, kind):
            return True
    return False


def _forecaster_params() -> dict[str, inspect.Parameter]:
    from .forecaster import XLSTMForecaster

    return dict(inspect.signature(XLSTMForecaster.__init__).parameters)


def _did_you_mean(key: str, known) -> str:
    close = difflib.get_close_matches(str(key), [k for k in known if k != "self"], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def parse_config(raw: Mapping) -> Config:
    """Validate a parsed YAML mapping into a :class:`Config`; every error found is
    reported in one :class:`ConfigError` (one line each), not one per run."""
    if not isinstance(raw, Mapping):
        raise ConfigError(f"config: expected a mapping of sections, got {type(raw).__name__}.")
    errors: list[str] = []
    errors += [f"{name}: unknown section. Sections are {sorted([*_SECTIONS, 'model'])}."
               for name in sorted(set(raw) - {*_SECTIONS, "model"})]
    config = Config()
    for name, cls in _SECTIONS.items():
        section = raw.get(name) or {}
        if not isinstance(section, Mapping):
            errors.append(f"{name}: expected a mapping, got {type(section).__name__}.")
            continue
        known = {f.name: f for f in fields(cls)}
        good = {}
        for key, value in section.items():
            if key not in known:
                errors.append(f"{name}.{key}: unknown key.{_did_you_mean(key, known)} "
                              f"Known keys: {sorted(known)}.")
            elif not _type_ok(value, str(known[key].type)):
                errors.append(f"{name}.{key}: expected {known[key].type}, "
                              f"got {type(value).__name__} {value!r}.")
            else:
                good[key] = value
        setattr(config, name, cls(**good))
    model = raw.get("model") or {}
    if not isinstance(model, Mapping):
        errors.append(f"model: expected a mapping, got {type(model).__name__}.")
        model = {}
    params = _forecaster_params()
    good = {}
    for key, value in model.items():
        if key not in params or key == "self":
            errors.append(f"model.{key}: unknown key.{_did_you_mean(key, params)} Known "
                          f"keys are the XLSTMForecaster arguments, e.g. lookback, horizon, "
                          f"d_model.")
            continue
        default = params[key].default
        if default is not None and not isinstance(default, (tuple, str)) and not (
                isinstance(value, type(default)) or (isinstance(default, float)
                                                     and isinstance(value, int))):
            errors.append(f"model.{key}: expected {type(default).__name__}, "
                          f"got {type(value).__name__} {value!r}.")
            continue
        value = tuple(value) if isinstance(value, list) else value
        try:  # the estimator's own rules, before any training
            check_params(FORECASTER_CONSTRAINTS, {key: value})
        except (TypeError, ValueError) as err:
            errors.append(f"model.{key}: {err}")
            continue
        good[key] = value
    config.model = good
    if config.data.layout not in ("long", "wide", "rows"):
        errors.append(f"data.layout: expected 'long', 'wide' or 'rows', got "
                      f"{config.data.layout!r}.")
    if not config.data.path:
        errors.append("data.path: required, the CSV or Parquet file to read.")
    if errors:
        raise ConfigError("\n".join(errors))
    return config


def load_config(path: str | Path, overrides: list[str] = ()) -> Config:
    """Read a YAML config and apply ``key.path=value`` overrides (values parsed as YAML)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist.")
    with open(path) as f:
        try:
            raw = yaml.safe_load(f) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err}).") from None
    if overrides and not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections to apply "
                          f"--set overrides; got {type(raw).__name__}.")
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: expected key.path=value.")
        node = raw
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {key}: {part} is not a section.")
        try:
            node[leaf] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ConfigError(f"--set {item!r}: the value is not valid YAML "
                              f"({str(err).splitlines()[0]}). Quote it if it is text.") from None
    return _resolve_paths(parse_config(raw), path.parent)


# (section, key) pairs holding file paths; models:/ and runs:/ URIs are left alone
_PATH_KEYS = (("data", "path"), ("data", "static_path"), ("predict", "model"),
              ("predict", "future"), ("output", "model_dir"), ("output", "forecasts"),
              ("output", "backtest"))


def _resolve_paths(config: Config, folder: Path) -> Config:
    """Relative paths of ``config`` made relative to ``folder`` (the config file's); a
    ``model.pretrained`` that names a folder beside the config is taken from there (a
    shipped or hub name is left as it is)."""
    pretrained = config.model.get("pretrained")
    if isinstance(pretrained, str) and not Path(pretrained).is_absolute() \
            and (folder / pretrained).is_dir():
        config.model["pretrained"] = str(folder / pretrained)
    for section, key in _PATH_KEYS:
        value = getattr(getattr(config, section), key)
        is_uri = value and (value.startswith(("runs:/", "models:/")) or "://" in value)
        if value and not is_uri and not Path(value).is_absolute():
            setattr(getattr(config, section), key, str(folder / value))
    return config
