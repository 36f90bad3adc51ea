"""Weight initialisation shared by the encoder's parts."""

from __future__ import annotations

from torch import nn


def init_linear_(linear: nn.Linear, std: float = 0.02) -> None:
    """BERT-style init: weights from a normal with ``std`` truncated at two standard
    deviations, biases zero (Devlin et al. 2019; used by wav2vec 2.0's ``init_bert_params``).
    """
    nn.init.trunc_normal_(linear.weight, mean=0.0, std=std, a=-2 * std, b=2 * std)
    if linear.bias is not None:
        nn.init.zeros_(linear.bias)
