"""Learning-rate schedule: linear warmup then cosine decay to a floor.

Warmup as in Goyal et al. 2017 ("Accurate, Large Minibatch SGD"), cosine decay as in
Loshchilov & Hutter 2017 ("SGDR"), without restarts; the combination used by wav2vec 2.0,
HuBERT and the Barlow Twins speech recipes.
"""

from __future__ import annotations

import functools
import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Multiplier of the peak learning rate for the update after ``step`` completed updates.

    Rises linearly from 0 at ``step = 0`` to 1 at ``step = warmup``, then follows half a
    cosine from 1 down to ``min_ratio`` at ``step = total`` and stays there.

    Args:
        step: number of optimizer updates already done (0-based index of the next one).
        warmup: number of warmup updates; 0 starts at the peak.
        total: update at which the cosine reaches its floor (the run's ``max_steps``).
        min_ratio: floor of the multiplier, in ``[0, 1]``.
    """
    if step < warmup:
        return step / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr_ratio: float
) -> LambdaLR:
    """A :class:`LambdaLR` applying :func:`warmup_cosine` to every parameter group.

    Call ``scheduler.step()`` once after every ``optimizer.step()``. The multiplier is a
    :func:`functools.partial` of a module-level function, so the scheduler's state dict
    holds only its step counter and a changed ``total_steps`` takes effect on resume.
    """
    multiplier = functools.partial(
        warmup_cosine, warmup=warmup_steps, total=total_steps, min_ratio=min_lr_ratio
    )
    return LambdaLR(optimizer, lr_lambda=multiplier)
