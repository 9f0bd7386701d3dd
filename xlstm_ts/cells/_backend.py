"""Which implementation runs a cell: the Triton kernels or the PyTorch reference.

``backend="auto"`` picks Triton for CUDA tensors when Triton imports, PyTorch
otherwise, silently. ``"triton"`` forces the kernels and raises a clear error
where they cannot run; on CPU tensors they run only under Triton's interpreter
(``TRITON_INTERPRET=1``, set before the kernels are first imported), which is
how the test suite checks them without a GPU.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import torch

BACKENDS = ("auto", "triton", "torch")


@functools.cache
def triton_available() -> bool:
    """Whether Triton is installed (imported lazily: it is optional)."""
    return importlib.util.find_spec("triton") is not None


def interpreting() -> bool:
    """Whether Triton runs kernels in its CPU interpreter (``TRITON_INTERPRET=1``)."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def resolve(backend: str, device: torch.device) -> str:
    """``"triton"`` or ``"torch"`` for tensors on ``device``."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}. Got {backend!r}.")
    if backend == "torch":
        return "torch"
    if backend == "auto":  # the device first: CPU steps under torch.compile skip the cache
        return "triton" if device.type == "cuda" and triton_available() else "torch"
    if not (triton_available() and (device.type == "cuda" or interpreting())):
        why = ("Triton is not installed (pip install triton)" if not triton_available() else
               f"the tensors are on {device.type}; the kernels need CUDA tensors, or "
               f"TRITON_INTERPRET=1 for Triton's CPU interpreter")
        raise ValueError(f"backend='triton' cannot run here: {why}. Use backend='auto' to fall "
                         f"back to the PyTorch path.")
    return "triton"
