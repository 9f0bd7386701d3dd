"""Argument checks shared by the cell entry points.

Checks raise ``TypeError`` for wrong kinds and ``ValueError`` for wrong values,
naming the argument and what was expected, so users see their mistake rather
than a shape error deep inside a matmul.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .._checks import check_choice, check_nonnegative_float, check_positive_int

__all__ = [
    "check_choice", "check_nonnegative_float", "check_positive_int", "check_same_device",
    "check_shape", "check_state", "check_tensor", "compute_dtype",
]

_FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


def check_tensor(name: str, value: object, ndim: int, dims: str) -> torch.Tensor:
    """Return ``value`` if it is a floating tensor with ``ndim`` dimensions named ``dims``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape {dims}. Got {type(value).__name__}."
        )
    if value.dtype not in _FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64). "
            f"Got {value.dtype}."
        )
    if value.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions {dims}. Got shape {tuple(value.shape)}."
        )
    return value


def check_shape(name: str, value: torch.Tensor, expected: Sequence[int], dims: str) -> None:
    """Raise ``ValueError`` unless ``value.shape == expected``."""
    if tuple(value.shape) != tuple(expected):
        raise ValueError(
            f"{name} must have shape {dims} = {tuple(expected)}. Got {tuple(value.shape)}."
        )


def check_same_device(**tensors: torch.Tensor) -> None:
    """Raise ``ValueError`` when the tensors live on different devices."""
    devices = {name: t.device for name, t in tensors.items()}
    if len(set(devices.values())) > 1:
        listing = ", ".join(f"{name} on {dev}" for name, dev in devices.items())
        raise ValueError(f"All tensors must be on one device. Got {listing}.")


def check_state(state: object, names: Sequence[str], shapes: Sequence[Sequence[int]],
                dims: Sequence[str]) -> tuple[torch.Tensor, ...]:
    """Validate a recurrent state tuple against the expected component shapes."""
    if not isinstance(state, (tuple, list)) or len(state) != len(names):
        raise TypeError(
            f"state must be a tuple ({', '.join(names)}) or None. Got {type(state).__name__}"
            + (f" of length {len(state)}." if isinstance(state, (tuple, list)) else ".")
        )
    for name, tensor, shape, dim in zip(names, state, shapes, dims, strict=True):
        check_tensor(f"state {name}", tensor, len(shape), dim)
        check_shape(f"state {name}", tensor, shape, dim)
    return tuple(state)


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """Accumulation dtype: float64 if any input is float64, float32 otherwise.

    Half-precision inputs are computed (and their states kept) in float32: the
    exponential gates overflow float16 and lose the stabilizer in bfloat16.
    """
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32
