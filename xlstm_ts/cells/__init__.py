"""xLSTM cells: parameter-free functions on tensors.

``mlstm`` / ``mlstm_step`` (matrix memory, parallelizable) and ``slstm``
(scalar memory with recurrent memory mixing). No module state, no frames.
Each runs as Triton kernels or as the PyTorch reference (``backend=``).
"""

from ._backend import BACKENDS
from .mlstm import FORMS as MLSTM_FORMS
from .mlstm import MLSTMState, mlstm, mlstm_step
from .slstm import SLSTMState, slstm

__all__ = ["BACKENDS", "MLSTM_FORMS", "MLSTMState", "SLSTMState", "mlstm", "mlstm_step", "slstm"]
