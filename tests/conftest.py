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


@pytest.fixture
def random_batch():
    """A factory of network input batches: B windows of L random steps around 10
    (history (B, L), its mask, no covariates) for a horizon of H steps."""

    def make(B: int = 5, L: int = 32, H: int = 8, seed: int = 0) -> dict:
        g = torch.Generator().manual_seed(seed)
        history = 10 + 3 * torch.randn(B, L, generator=g)
        return {"history": history, "history_mask": torch.ones(B, L, dtype=torch.bool),
                "past": torch.zeros(B, L, 0), "future": torch.zeros(B, L + H, 0),
                "static": torch.zeros(B, 0)}

    return make
