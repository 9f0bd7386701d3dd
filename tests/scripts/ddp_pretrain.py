"""Pretrain a tiny network with DDP on two CPU processes (the test in
tests/test_pretraining.py): ``python tests/scripts/ddp_pretrain.py CORPUS OUT``.

Run as a script because Lightning's "ddp" launcher starts the other rank by running
this same command again. Every rank writes ``OUT/rank-<r>.json``: the shards its
corpus reader owns."""

import json
import sys
from pathlib import Path

import torch

from xlstm_ts.pretraining import CorpusWindows, PretrainConfig, pretrain


class Recorded(CorpusWindows):
    def __iter__(self):
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        (OUT / f"rank-{rank}.json").write_text(json.dumps({"shards": self.mine()}))
        return super().__iter__()


if __name__ == "__main__":
    CORPUS, OUT = Path(sys.argv[1]), Path(sys.argv[2])
    OUT.mkdir(parents=True, exist_ok=True)
    import xlstm_ts.pretraining.train as train

    train.CorpusWindows = Recorded
    config = PretrainConfig.from_dict({
        "corpus": {"dir": str(CORPUS)},
        "model": {"embedding_dim": 16, "patch_size": 8, "context_len": 64, "future_len": 16,
                  "input_ff_dim": 32, "blocks": ["bi-mlstm"], "num_heads": 2},
        "training": {"max_steps": 6, "batch_size": 8, "val_windows": 32, "val_every": 3,
                     "warmup_steps": 2, "min_context": 8, "accelerator": "cpu",
                     "devices": 2, "strategy": "ddp"},
        "output": {"dir": str(OUT / "run"), "checkpoint": str(OUT / "ckpt")}})
    pretrain(config)
