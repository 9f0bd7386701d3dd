"""Write ``tests/fixtures/nx_ai_mlstm_chunkwise.pt``: seeded float64 inputs and NX-AI
``mlstm_kernels`` (``native_autograd`` chunkwise) outputs, final states and input
gradients, so ``tests/test_mlstm.py`` compares against them without the package.

    pip install --target /tmp/nxai --no-deps mlstm-kernels==2.0.6 einops
    PYTHONPATH=/tmp/nxai python tests/scripts/make_nx_ai_fixture.py
"""

from pathlib import Path

import torch
from mlstm_kernels.torch.chunkwise import registry

OUT = Path(__file__).resolve().parent.parent / "fixtures" / "nx_ai_mlstm_chunkwise.pt"


def main() -> None:
    import mlstm_kernels

    g = torch.Generator().manual_seed(20261201)
    B, NH, S, DQK, DV = 1, 2, 48, 8, 4
    q, k = (torch.randn(B, NH, S, DQK, dtype=torch.float64, generator=g) for _ in range(2))
    v = torch.randn(B, NH, S, DV, dtype=torch.float64, generator=g)
    i = torch.randn(B, NH, S, dtype=torch.float64, generator=g)
    f = torch.randn(B, NH, S, dtype=torch.float64, generator=g) + 2.0
    inputs = [t.clone().requires_grad_() for t in (q, k, v, i, f)]
    h, (C, n, m) = registry["native_autograd"](*inputs, chunk_size=16,
                                               return_last_states=True)
    weights = torch.randn(h.shape, dtype=torch.float64, generator=g)
    (h * weights).sum().backward()
    tensors = {"q": q, "k": k, "v": v, "i": i, "f": f, "h": h.detach(), "C": C.detach(),
               "n": n.detach(), "m": m.detach().squeeze(-1), "weights": weights,
               **{f"grad_{name}": t.grad for name, t in zip("qkvif", inputs, strict=True)}}
    torch.save(tensors, OUT)
    print(f"wrote {OUT} from mlstm_kernels {getattr(mlstm_kernels, '__version__', '?')}")


if __name__ == "__main__":
    main()
