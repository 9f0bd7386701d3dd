"""Networks built from the xLSTM cells (nn.Modules; import cells only)."""

from .blocks import GatedFeedForward, mLSTMBlock, sLSTMBlock
from .revin import RevIN
from .stack import XLSTMStack

__all__ = ["GatedFeedForward", "RevIN", "XLSTMStack", "mLSTMBlock", "sLSTMBlock"]
