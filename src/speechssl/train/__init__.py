"""Pretraining: configs, the shared training loop, checkpoints and metrics logging.

``pretrain(load_pretrain_config(path, overrides))`` is what ``speechssl pretrain`` runs;
:func:`train` is the method-agnostic loop underneath; ``load_encoder`` reads the
pretrained encoder back out of a checkpoint (it lives in :mod:`speechssl.models.checkpoint`).
"""

from speechssl.train.checkpoint import load_checkpoint, save_checkpoint
from speechssl.train.config import OptimConfig, PretrainConfig, TrainConfig, load_pretrain_config
from speechssl.train.pretrain import pretrain
from speechssl.train.trainer import (
    NonFiniteLossError,
    PretrainData,
    TrainingInterruptedError,
    TrainResult,
    train,
)

__all__ = [
    "NonFiniteLossError",
    "OptimConfig",
    "PretrainConfig",
    "PretrainData",
    "TrainConfig",
    "TrainResult",
    "TrainingInterruptedError",
    "load_checkpoint",
    "load_pretrain_config",
    "pretrain",
    "save_checkpoint",
    "train",
]
