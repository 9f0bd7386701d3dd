"""Argument checks shared by every public entry point.

``TypeError`` for the wrong kind of value, ``ValueError`` for a wrong value; the
message names the argument, what was expected and what arrived.

Parameters are declared once, as a table of constraints (in the spirit of
scikit-learn's ``_parameter_constraints``), and checked once where they enter
the library: :func:`check_params` walks a table over a mapping of values.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass


def check_choice(name: str, value: object, options: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}. Got {value!r}.")
    return value


def check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a positive int. Got {type(value).__name__}.")
    if value < 1:
        raise ValueError(f"{name} must be a positive int. Got {value}.")
    return value


def check_nonnegative_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a non-negative float. Got {type(value).__name__}.")
    if not value >= 0:
        raise ValueError(f"{name} must be a non-negative float. Got {value}.")
    return float(value)


# ---------------------------------------------------------------- declared constraints

Check = Callable[[str, object], None]


@dataclass(frozen=True)
class Integer:
    """An integer (Python's or numpy's, as scikit-learn accepts; not a bool) in
    ``[low, high]``."""

    low: int | None = None
    high: int | None = None

    def __call__(self, name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be {self._kind()}. "
                            f"Got {type(value).__name__} {value!r}.")
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            raise ValueError(f"{name} must be {self._kind()}. Got {value}.")

    def _kind(self) -> str:
        if self.high is not None:
            return f"an int in [{self.low}, {self.high}]"
        return {None: "an int", 0: "a non-negative int", 1: "a positive int"}.get(
            self.low, f"an int >= {self.low}")


@dataclass(frozen=True)
class Real:
    """A finite int or float (not a bool) between ``low`` and ``high``; ``open`` names
    the ends that are excluded (``"low"``, ``"high"``, ``"both"`` or ``""``)."""

    low: float | None = None
    high: float | None = None
    open: str = ""

    def __call__(self, name: str, value: object) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"{name} must be a number{self._range()}. "
                            f"Got {type(value).__name__} {value!r}.")
        lo_open = self.open in ("low", "both")
        hi_open = self.open in ("high", "both")
        bad = not math.isfinite(value) or (
            self.low is not None and (value <= self.low if lo_open else value < self.low)) or (
            self.high is not None and (value >= self.high if hi_open else value > self.high))
        if bad:
            raise ValueError(f"{name} must be a number{self._range()}. Got {value!r}.")

    def _range(self) -> str:
        lo = "-inf" if self.low is None else f"{self.low:g}"
        hi = "inf" if self.high is None else f"{self.high:g}"
        left = "(" if self.open in ("low", "both") or self.low is None else "["
        right = ")" if self.open in ("high", "both") or self.high is None else "]"
        return f" in {left}{lo}, {hi}{right}"


@dataclass(frozen=True)
class Options:
    """One of the given strings."""

    choices: tuple[str, ...]

    def __call__(self, name: str, value: object) -> None:
        check_choice(name, value, self.choices)


@dataclass(frozen=True)
class InstanceOf:
    """An instance of ``types`` (e.g. ``str``, ``bool``)."""

    types: tuple[type, ...]
    label: str

    def __call__(self, name: str, value: object) -> None:
        if isinstance(value, bool) and bool not in self.types:
            raise TypeError(f"{name} must be {self.label}. Got bool {value!r}.")
        if not isinstance(value, self.types):
            raise TypeError(f"{name} must be {self.label}. Got {type(value).__name__} "
                            f"{value!r}.")


@dataclass(frozen=True)
class SequenceOf:
    """A list or tuple (never a bare string, which would split into characters) whose
    items each satisfy ``item``; ``min_len`` items at least."""

    item: Check
    min_len: int = 0

    def __call__(self, name: str, value: object) -> None:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            hint = f" Write [{value!r}] for one name." if isinstance(value, str) else ""
            raise TypeError(f"{name} must be a list or tuple. Got {type(value).__name__} "
                            f"{value!r}.{hint}")
        if len(value) < self.min_len:
            raise ValueError(f"{name} must hold at least {self.min_len} item(s). Got {value!r}.")
        for j, v in enumerate(value):
            self.item(f"{name}[{j}]", v)


@dataclass(frozen=True)
class NoneOr:
    """None, or a value satisfying ``inner``."""

    inner: Check

    def __call__(self, name: str, value: object) -> None:
        if value is not None:
            self.inner(name, value)


def any_value(name: str, value: object) -> None:
    """No constraint (objects handed to Lightning as they are)."""


STR = InstanceOf((str,), "a str")
BOOL = InstanceOf((bool,), "True or False")
PATH = InstanceOf((str, os.PathLike), "a path (str or os.PathLike)")
SEED = Integer(0, 2**32 - 1)  # the range numpy and Lightning accept


def check_params(constraints: Mapping[str, Check], values: Mapping[str, object]) -> None:
    """Check every value of ``values`` that ``constraints`` declares."""
    for name, value in values.items():
        check = constraints.get(name)
        if check is not None:
            check(name, value)
