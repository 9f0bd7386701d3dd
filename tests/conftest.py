import os

# Without a GPU, Triton kernels run under Triton's CPU interpreter; the switch is read
# when a kernel is defined, so it is set before anything imports them.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
