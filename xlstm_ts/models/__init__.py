"""Networks built from the xLSTM cells (nn.Modules; import cells only)."""

from .blocks import GatedFeedForward, mLSTMBlock, sLSTMBlock
from .heads import DistributionHead, PointHead, QuantileHead, build_head
from .networks import (
    HEADS,
    NETWORK_CONSTRAINTS,
    NETWORKS,
    Ensemble,
    MixerXLSTM,
    NetworkConfig,
    PatchXLSTM,
    XLSTMTime,
    build_network,
    check_network_shape,
)
from .revin import RevIN
from .stack import XLSTMStack

__all__ = [
    "HEADS", "NETWORKS", "NETWORK_CONSTRAINTS", "DistributionHead", "Ensemble", "GatedFeedForward",
    "MixerXLSTM", "NetworkConfig", "PatchXLSTM",
    "PointHead", "QuantileHead", "RevIN", "XLSTMStack", "XLSTMTime", "build_head",
    "build_network", "check_network_shape", "mLSTMBlock", "sLSTMBlock",
]
