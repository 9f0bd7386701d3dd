"""TiRex-2 (NX-AI's pretrained xLSTM forecaster, Apache-2.0) on this project's cells.

:class:`TiRex2Network` is the network, :class:`TiRex2Config` its ``config.json``,
:func:`forecast` the quantile forecasts of a batch of series around it, and
:func:`load_checkpoint` reads a folder of ``config.json`` and safetensors weights
(see ``docs/pretrained.md`` for the attribution and licence)."""

from .checkpoint import load_checkpoint, save_checkpoint
from .config import BlockConfig, TiRex2Config
from .forecast import SeriesInput, forecast
from .network import TiRex2Network

__all__ = ["BlockConfig", "SeriesInput", "TiRex2Config", "TiRex2Network", "forecast",
           "load_checkpoint", "save_checkpoint"]
