"""Product quantization with the straight-through Gumbel softmax, wav2vec 2.0's target quantizer.

Baevski, Zhou, Mohamed, Auli (2020), "wav2vec 2.0: A Framework for Self-Supervised Learning
of Speech Representations", NeurIPS, §2 ("Quantization module", eq. 1) and §3.2 (the
diversity loss, eq. 4); the Gumbel softmax of Jang, Gu, Poole (2017), "Categorical
Reparameterization with Gumbel-Softmax", ICLR, in its straight-through form.

Each frame chooses one entry from each of ``G`` codebooks (groups) of ``V`` entries; the
quantized vector is the concatenation of the ``G`` chosen entries. Choosing is a hard
one-hot in the forward pass, while gradients flow through the soft Gumbel-softmax
probabilities; at evaluation the choice is the argmax of the logits. The temperature
``τ`` is annealed during training (:class:`GumbelTemperatureSchedule`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.models.padding import zero_padding_frames


def codebook_perplexity(probs: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """``Σ_g exp(−Σ_v p̄_{g,v} log p̄_{g,v})`` with ``p̄_g`` the mean of ``probs`` over frames.

    The exponentiated entropy of each group's average distribution, summed over groups:
    ``G·V`` when every entry is used equally, ``G`` when each group always picks one entry.

    Args:
        probs: ``(frames, groups, entries)`` distributions over each group's entries (soft
            probabilities, or one-hot choices for the usage of the codebooks).
        valid: optional ``(frames,)`` bool, the frames averaged over (all when None): padded
            frames are left out without a data-dependent selection.

    Returns:
        scalar perplexity in ``[G, G·V]``.
    """
    if probs.dim() != 3:
        raise ValueError(f"probs: expected (frames, groups, entries), found {tuple(probs.shape)}")
    if valid is None:
        mean = probs.float().mean(dim=0)  # (groups, entries)
    else:
        weights = valid.float()[:, None, None]  # (frames, 1, 1)
        mean = (probs.float() * weights).sum(dim=0) / weights.sum().clamp(min=1)  # (groups, entries)
    entropy = -torch.xlogy(mean, mean).sum(dim=-1)  # (groups,)
    return torch.exp(entropy).sum()


def diversity_loss(perplexity: torch.Tensor, groups: int, entries: int) -> torch.Tensor:
    """wav2vec 2.0's diversity loss ``L_d = (G·V − perplexity) / (G·V)`` (Baevski et al. 2020, eq. 4).

    The paper writes eq. 4 with the entropy of ``p̄_g``; the reference implementation (and
    this one) uses its exponential, the perplexity of :func:`codebook_perplexity`, so that
    ``L_d`` is 0 when the average softmax uses all ``G·V`` entries equally and
    ``1 − 1/V`` when each group puts all its mass on a single entry.

    Args:
        perplexity: scalar soft-probability perplexity of :func:`codebook_perplexity`.
        groups: ``G``.
        entries: ``V``.
    """
    total = groups * entries
    return (total - perplexity) / total


@dataclass(frozen=True)
class GumbelTemperatureSchedule:
    """``τ(step) = max(end, start · decay^step)``, wav2vec 2.0's Gumbel temperature annealing.

    Baevski et al. (2020), §4.2: τ goes from 2 to 0.5 (BASE; 0.1 for LARGE), multiplied by
    0.999995 at every update.

    Attributes:
        start: τ before the first update.
        end: floor of τ.
        decay: factor applied per update, in ``(0, 1]``.
    """

    start: float = 2.0
    end: float = 0.5
    decay: float = 0.999995

    def __post_init__(self) -> None:
        if not 0 < self.end <= self.start:
            raise ValueError(
                f"end/start: expected 0 < end <= start, found end={self.end}, start={self.start}"
            )
        if not 0 < self.decay <= 1:
            raise ValueError(f"decay: expected a factor in (0, 1], found {self.decay}")

    def __call__(self, step: int) -> float:
        """τ after ``step`` updates."""
        if step < 0:
            raise ValueError(f"step: expected >= 0, found {step}")
        return max(self.end, self.start * self.decay**step)


@dataclass
class QuantizerOutput:
    """What :class:`GumbelVectorQuantizer` returns.

    Attributes:
        codes: ``(batch, frames, code_dim)`` the concatenated chosen entries, zero on padding.
        indices: ``(batch, frames, groups)`` int64 chosen entry of each group.
        perplexity: scalar perplexity of the average soft distribution over valid frames
            (the one :func:`diversity_loss` uses).
        code_perplexity: scalar perplexity of the codebook usage (hard choices) over valid frames.
        diversity_loss: scalar ``L_d`` of eq. 4.
    """

    codes: torch.Tensor
    indices: torch.Tensor
    perplexity: torch.Tensor
    code_perplexity: torch.Tensor
    diversity_loss: torch.Tensor


def one_hot(indices: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """``(..., classes)`` one-hot rows of ``indices (...)`` in ``[0, classes)``.

    ``F.one_hot`` reads the indices' range back to the host to check it; this scatter does not.
    """
    return torch.zeros(*indices.shape, classes, dtype=dtype, device=indices.device).scatter_(
        -1, indices[..., None], 1.0
    )


class GumbelVectorQuantizer(nn.Module):
    """``G`` codebooks of ``V`` entries, chosen by the Gumbel softmax (Baevski et al. 2020, §2, eq. 1).

    A linear layer maps each frame to logits ``l ∈ R^{G×V}``; in training, group ``g``'s
    choice is the straight-through Gumbel softmax
    ``p_{g,v} = exp((l_{g,v} + n_v)/τ) / Σ_k exp((l_{g,k} + n_k)/τ)`` with
    ``n = −log(−log(u))``, ``u ~ U(0, 1)`` (eq. 1): the forward pass uses the one-hot of
    ``argmax_v p_{g,v}``, the backward pass the gradient of ``p``. In eval mode the choice
    is ``argmax_v l_{g,v}``, without noise. The quantized vector concatenates the chosen
    entries of the ``G`` groups.

    The temperature ``τ`` is a buffer (saved with checkpoints); set it with
    :meth:`set_temperature`, e.g. from a :class:`GumbelTemperatureSchedule` after every update.

    Args:
        input_dim: channels of the frames being quantized.
        groups: ``G`` (wav2vec 2.0: 2).
        entries: ``V`` per group (wav2vec 2.0: 320).
        code_dim: dimension of the quantized vector; each entry has ``code_dim / G``.
        temperature: initial ``τ``.
    """

    def __init__(
        self,
        input_dim: int,
        groups: int = 2,
        entries: int = 320,
        code_dim: int = 256,
        temperature: float = 2.0,
    ) -> None:
        super().__init__()
        for name, value in (("input_dim", input_dim), ("groups", groups), ("entries", entries)):
            if value < 1:
                raise ValueError(f"{name}: expected a positive integer, found {value}")
        if code_dim < 1 or code_dim % groups != 0:
            raise ValueError(f"code_dim: expected a positive multiple of groups={groups}, found {code_dim}")
        self.groups = groups
        self.entries = entries
        self.code_dim = code_dim
        self.logits = nn.Linear(input_dim, groups * entries)
        # the reference implementation's init: logits weights N(0, 1), zero bias, entries U(0, 1)
        nn.init.normal_(self.logits.weight, mean=0.0, std=1.0)
        nn.init.zeros_(self.logits.bias)
        self.codebook = nn.Parameter(torch.rand(groups, entries, code_dim // groups))
        self.register_buffer("temperature", torch.tensor(0.0))
        self.set_temperature(temperature)

    def set_temperature(self, temperature: float) -> None:
        """Set the Gumbel softmax temperature ``τ`` (> 0)."""
        if not temperature > 0:
            raise ValueError(f"temperature: expected > 0, found {temperature}")
        self.temperature.fill_(temperature)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> QuantizerOutput:
        """Quantize every frame; statistics over the valid frames only.

        Args:
            x: ``(batch, frames, input_dim)`` frames to quantize.
            lengths: ``(batch,)`` valid frames per utterance.

        Returns:
            the codes, the chosen entries, the perplexities and the diversity loss.
        """
        batch, frames, _ = x.shape
        valid = ~lengths_to_padding_mask(lengths, frames)  # (batch, frames)
        with torch.autocast(device_type=x.device.type, enabled=False):
            logits = self.logits(x.float())  # (batch, frames, groups * entries)
            logits = logits.view(batch, frames, self.groups, self.entries)  # (batch, frames, groups, entries)
            if self.training:
                uniform = torch.rand_like(logits).clamp(min=torch.finfo(logits.dtype).tiny)
                gumbel = -torch.log(-torch.log(uniform))  # (batch, frames, groups, entries)
                soft = torch.softmax((logits + gumbel) / self.temperature, dim=-1)
                indices = soft.argmax(dim=-1)  # (batch, frames, groups)
                hard = one_hot(indices, self.entries, soft.dtype)
                choice = hard - soft.detach() + soft  # straight-through: forward hard, gradient soft
            else:
                indices = logits.argmax(dim=-1)  # (batch, frames, groups)
                choice = one_hot(indices, self.entries, logits.dtype)
            # (batch, frames, groups, entries) x (groups, entries, entry_dim) -> (batch, frames, groups, entry_dim)
            codes = torch.einsum("btgv,gvd->btgd", choice, self.codebook.float())
            codes = codes.reshape(batch, frames, self.code_dim)  # (batch, frames, groups * entry_dim)
            flat_valid = valid.flatten()  # (batch * frames,)
            probabilities = torch.softmax(logits, dim=-1).flatten(0, 1)  # (batch * frames, groups, entries)
            perplexity = codebook_perplexity(probabilities, flat_valid)
            chosen = one_hot(indices, self.entries, logits.dtype)  # (batch, frames, groups, entries)
            code_perplexity = codebook_perplexity(chosen.flatten(0, 1), flat_valid)
        return QuantizerOutput(
            codes=zero_padding_frames(codes, lengths),
            indices=indices,
            perplexity=perplexity,
            code_perplexity=code_perplexity,
            diversity_loss=diversity_loss(perplexity, self.groups, self.entries),
        )

    def extra_repr(self) -> str:
        return f"groups={self.groups}, entries={self.entries}, code_dim={self.code_dim}"


__all__ = [
    "GumbelTemperatureSchedule",
    "GumbelVectorQuantizer",
    "QuantizerOutput",
    "codebook_perplexity",
    "diversity_loss",
]
