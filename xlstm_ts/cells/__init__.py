"""xLSTM cells: parameter-free functions on tensors.

``mlstm`` / ``mlstm_step`` (matrix memory, parallelizable) and ``slstm``
(scalar memory with recurrent memory mixing). No module state, no frames.
"""

from .mlstm import FORMS as MLSTM_FORMS
from .mlstm import MLSTMState, mlstm, mlstm_step
from .slstm import SLSTMState, slstm

__all__ = ["MLSTM_FORMS", "MLSTMState", "SLSTMState", "mlstm", "mlstm_step", "slstm"]
