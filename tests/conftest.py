import os

# Without a GPU, Triton kernels run under Triton's CPU interpreter; the switch is read
# when a kernel is defined, so it is set before anything imports them.
if not os.path.exists("/dev/nvidiactl"):
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest
import torch
from hypothesis import Phase, settings

# `make mutation` sets HYPOTHESIS_PROFILE=mutation: a property that a mutant breaks
# fails at its first counterexample instead of shrinking it for minutes (which mutmut
# would report as a timeout, not a kill).
settings.register_profile("mutation", phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
