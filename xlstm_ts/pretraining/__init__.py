"""Pretraining a TiRex-2-architecture network on a corpus of synthetic and real series
(``xlstm-ts pretrain --config configs/pretrain-small.yaml``)."""

from .corpus import EXCLUDED, CorpusWindows, real_series, write_corpus
from .synthetic import GENERATORS, kernel_synth, tsmixup
from .train import PretrainConfig, pretrain

__all__ = ["EXCLUDED", "GENERATORS", "CorpusWindows", "PretrainConfig", "kernel_synth",
           "pretrain", "real_series", "tsmixup", "write_corpus"]
