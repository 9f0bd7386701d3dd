"""Argument checks shared by every public entry point.

``TypeError`` for the wrong kind of value, ``ValueError`` for a wrong value; the
message names the argument, what was expected and what arrived.
"""

from __future__ import annotations

from collections.abc import Sequence


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
