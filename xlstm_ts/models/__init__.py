"""Networks built from the xLSTM cells (nn.Modules; import cells only)."""

from .blocks import GatedFeedForward, mLSTMBlock, sLSTMBlock
from .heads import DistributionHead, PointHead, QuantileHead, build_head
from .networks import HEADS, NETWORKS, NetworkConfig, PatchXLSTM, XLSTMTime, build_network
from .revin import RevIN
from .stack import XLSTMStack

__all__ = [
    "HEADS", "NETWORKS", "DistributionHead", "GatedFeedForward", "NetworkConfig", "PatchXLSTM",
    "PointHead", "QuantileHead", "RevIN", "XLSTMStack", "XLSTMTime", "build_head",
    "build_network", "mLSTMBlock", "sLSTMBlock",
]
