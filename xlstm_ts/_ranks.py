"""Which process of a distributed run this is, read from the launchers' variables
(no Lightning needed: forecasting commands ask too)."""

from __future__ import annotations

import os


def is_rank_zero() -> bool:
    """Whether this process is (or will be, once a launcher starts the others) global rank
    0 of a distributed run; True outside one. Read from the variables launchers set
    (torchrun's RANK, Lightning's LOCAL_RANK and NODE_RANK, SLURM_PROCID), so it holds
    before the trainer exists: only rank 0 opens MLflow runs and writes models."""
    env = os.environ
    for name in ("RANK", "SLURM_PROCID"):
        if name in env:
            return int(env[name]) == 0
    return int(env.get("LOCAL_RANK", 0)) == 0 and int(env.get("NODE_RANK", 0)) == 0
