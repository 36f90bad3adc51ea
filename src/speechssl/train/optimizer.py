"""Which parameters weight decay applies to: one rule for pretraining and every downstream head.

Decoupled weight decay (AdamW, Loshchilov & Hutter 2019) is applied to weight matrices and
convolution kernels only; biases, normalisation gains, layer-mixing logits and other 0-/1-d
parameters are not decayed, as in BERT (Devlin et al. 2019), wav2vec 2.0 and Barlow Twins'
LARS exclusions (decaying a norm gain or a softmax logit pulls it towards a meaningless 0).
"""

from __future__ import annotations

from typing import Any

from torch import nn


def parameter_groups(module: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Optimizer parameter groups of ``module``'s trainable parameters: decayed and not decayed.

    Args:
        module: the model whose ``requires_grad`` parameters are optimised.
        weight_decay: decay of the matrices and kernels (parameters of 2 or more dims).

    Returns:
        ``[{"params": matrices, "weight_decay": weight_decay}, {"params": others,
        "weight_decay": 0.0}]``, empty groups left out.

    Raises:
        ValueError: ``module`` has no trainable parameter.
    """
    decay, no_decay = [], []
    for parameter in module.parameters():
        if parameter.requires_grad:
            (decay if parameter.ndim >= 2 else no_decay).append(parameter)
    groups = [
        {"params": params, "weight_decay": decay_of_group}
        for params, decay_of_group in ((decay, weight_decay), (no_decay, 0.0))
        if params
    ]
    if not groups:
        raise ValueError(f"{type(module).__name__}: expected trainable parameters, found none")
    return groups


__all__ = ["parameter_groups"]
