"""Vector quantisation with a learned codebook and the straight-through estimator.

van den Oord, Vinyals, Kavukcuoglu (2017), "Neural Discrete Representation Learning"
(VQ-VAE), §3.1–3.2: each frame ``h`` is replaced by its nearest codebook entry
``e_k, k = argmin_j ||h − e_j||₂`` (eq. 1–2); the gradient of the loss with respect to the
quantised frame is copied unchanged to ``h`` (the straight-through estimator of Bengio et
al. 2013), and the codebook and the encoder are pulled together by the last two terms of
eq. 3::

    L_codebook   = ||sg[h] − e_k||²        (moves the codebook)
    L_commitment = β ||h − sg[e_k]||²      (keeps the encoder committed to its code)

with ``sg`` the stop-gradient. VQ-APC (Chung et al. 2020) applies the same layer to the
hidden states of APC, with the commitment weight written α.

Nearest-neighbour assignment is prone to codebook collapse: entries that no frame picks
receive no gradient and never move again. As with the random restarts of Dhariwal et al.
(2020, "Jukebox: A Generative Model for Music") and the data-dependent re-initialisation of
Łańcucki et al. (2020, "Robust Training of Vector Quantized Bottleneck Models"), every
entry whose running usage falls below a threshold is reset, in training, to a random frame
of the current batch. Usage starts at zero, so the first training batch initialises the
whole codebook from data.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from speechssl import distributed
from speechssl.data.batch import host_lengths, lengths_to_padding_mask


@dataclass
class VectorQuantizerOutput:
    """Quantised frames, their codes and the two VQ-VAE loss terms.

    Attributes:
        quantized: ``(batch, frames, dim)`` nearest codebook entries, carrying the
            straight-through gradient to the input; zero on padded frames.
        codes: ``(batch, frames)`` int64 index of each frame's entry; ``-1`` on padded frames.
        codebook_loss: scalar ``MSE(sg[h], e_k)`` over valid frames (gradient to the codebook only).
        commitment_loss: scalar ``MSE(h, sg[e_k])`` over valid frames, not yet multiplied by β
            (gradient to the input only).
        loss: scalar ``codebook_loss + β · commitment_loss``.
        perplexity: scalar ``exp(H(p))`` of the codes' empirical distribution ``p`` over the
            valid frames: the effective number of codes used (1 to ``codebook_size``). Detached.
        code_usage: scalar fraction of the codebook entries chosen by at least one valid frame. Detached.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    codebook_loss: torch.Tensor
    commitment_loss: torch.Tensor
    loss: torch.Tensor
    perplexity: torch.Tensor
    code_usage: torch.Tensor


class VectorQuantizer(nn.Module):
    """The VQ-VAE bottleneck (van den Oord et al. 2017, eq. 1–3) over the valid frames of a batch.

    The squared norms of eq. 3 are averaged over frames and dimensions (mean squared
    errors), so the terms do not grow with ``dim``. Distances and losses are computed in
    at least float32 with autocast off, so code assignments do not change under bf16.
    The codebook is learned by gradient descent on the codebook term (not by the
    exponential moving averages of the paper's appendix).

    Dead-code restarts (module docstring): ``usage`` holds an exponential moving average,
    with decay ``usage_decay``, of how many valid frames of a (global) batch pick each
    entry. At the start of every training forward pass, entries whose usage is below
    ``dead_code_threshold`` are reset to random valid frames of the batch (rank 0's
    frames under data parallelism, so every rank keeps the same codebook) and their usage
    to the batch's mean usage per entry. Usage starts at zero, so the first training pass
    initialises the codebook from data; ``dead_code_threshold=0`` disables restarts and
    keeps the initial codebook, uniform in ``[−1/K, 1/K]``, i.e. the paper's quantiser.

    Args:
        codebook_size: number of entries ``K``.
        dim: width of the entries and of the input frames.
        commitment_weight: β (α in VQ-APC); the paper uses 0.25.
        dead_code_threshold: running usage (frames per batch) below which an entry is reset.
        usage_decay: decay of the running usage, in ``[0, 1)``.
    """

    usage: torch.Tensor

    def __init__(
        self,
        codebook_size: int,
        dim: int,
        commitment_weight: float = 0.25,
        dead_code_threshold: float = 0.1,
        usage_decay: float = 0.9,
    ) -> None:
        super().__init__()
        if codebook_size < 1:
            raise ValueError(f"codebook_size: expected >= 1, found {codebook_size}")
        if dim < 1:
            raise ValueError(f"dim: expected >= 1, found {dim}")
        if commitment_weight < 0:
            raise ValueError(f"commitment_weight: expected >= 0, found {commitment_weight}")
        if dead_code_threshold < 0:
            raise ValueError(f"dead_code_threshold: expected >= 0, found {dead_code_threshold}")
        if not 0.0 <= usage_decay < 1.0:
            raise ValueError(f"usage_decay: expected a number in [0, 1), found {usage_decay}")
        self.codebook_size = codebook_size
        self.dim = dim
        self.commitment_weight = commitment_weight
        self.dead_code_threshold = dead_code_threshold
        self.usage_decay = usage_decay
        self.codebook = nn.Parameter(torch.empty(codebook_size, dim))
        nn.init.uniform_(self.codebook, -1.0 / codebook_size, 1.0 / codebook_size)
        self.register_buffer("usage", torch.zeros(codebook_size))

    def nearest(self, frames: torch.Tensor) -> torch.Tensor:
        """Index of the nearest codebook entry (squared Euclidean distance) of each row.

        Args:
            frames: ``(count, dim)``.

        Returns:
            ``(count,)`` int64 codes; ties go to the lowest index.
        """
        with torch.no_grad():
            codebook = self.codebook.to(frames.dtype)
            distances = (
                frames.pow(2).sum(dim=1, keepdim=True)  # (count, 1)
                - 2.0 * frames @ codebook.T  # (count, K)
                + codebook.pow(2).sum(dim=1)[None, :]  # (1, K)
            )  # (count, K)
            return distances.argmin(dim=1)

    @torch.no_grad()
    def restart_dead_codes(self, frames: torch.Tensor, valid: torch.Tensor) -> None:
        """Reset every entry whose running usage is below ``dead_code_threshold`` to a random valid row of ``frames``.

        Args:
            frames: ``(count, dim)`` frames of this rank's batch.
            valid: ``(count,)`` bool, the rows that are valid frames (at least one).
        """
        dead = self.usage < self.dead_code_threshold  # (K,)
        # a pick for every entry, kept where the entry is dead: no read of how many are
        ends = valid.long().cumsum(dim=0)  # (count,) valid rows up to each row
        count = ends[-1].to(frames.dtype)
        uniform = torch.rand(self.codebook_size, device=frames.device, dtype=frames.dtype)  # (K,)
        # the valid row of rank floor(u · count) among the valid rows
        rows = torch.searchsorted(ends, (uniform * count).long(), right=True).clamp(max=frames.shape[0] - 1)
        picks = frames[rows]  # (K, dim)
        if distributed.is_distributed():
            picks = distributed.all_reduce_sum(picks * float(distributed.is_main_process()))  # rank 0's picks
            count = distributed.all_reduce_sum(count)  # global valid frames
        self.codebook.copy_(torch.where(dead[:, None], picks.to(self.codebook.dtype), self.codebook))
        self.usage.copy_(torch.where(dead, count.to(self.usage.dtype) / self.codebook_size, self.usage))

    def code_counts(self, codes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``(K,)`` how many valid frames chose each entry (float; a fixed shape, unlike ``bincount`` on a GPU).

        Args:
            codes: ``(count,)`` code of each frame.
            valid: ``(count,)`` bool, the frames that count.
        """
        return torch.zeros(self.codebook_size, device=codes.device).index_add_(0, codes, valid.float())

    @torch.no_grad()
    def update_usage(self, counts: torch.Tensor) -> None:
        """Fold this batch's code counts (summed over ranks) into the running usage.

        Args:
            counts: ``(K,)`` valid frames of this rank per entry (:meth:`code_counts`).
        """
        counts = distributed.all_reduce_sum(counts.to(self.usage.dtype))
        self.usage.mul_(self.usage_decay).add_(counts, alpha=1.0 - self.usage_decay)

    def forward(self, h: torch.Tensor, lengths: torch.Tensor) -> VectorQuantizerOutput:
        """Quantise the valid frames of ``h``.

        Every frame is quantised and the valid ones weighted, so no shape depends on the
        lengths and nothing is read back from an accelerator.

        Args:
            h: ``(batch, frames, dim)`` continuous frames; padded frames are ignored.
            lengths: ``(batch,)`` valid frames per utterance, at least one in the batch.

        Returns:
            the quantised frames, codes, loss terms and usage statistics.
        """
        if h.dim() != 3 or h.shape[-1] != self.dim:
            raise ValueError(f"h: expected (batch, frames, {self.dim}), found {tuple(h.shape)}")
        if lengths.shape != (h.shape[0],):
            raise ValueError(f"lengths: expected shape ({h.shape[0]},), found {tuple(lengths.shape)}")
        known = host_lengths(lengths)
        if known is not None and sum(min(length, h.shape[1]) for length in known) <= 0:
            raise ValueError("lengths: expected at least one valid frame in the batch, found none")
        padded = lengths_to_padding_mask(lengths.to(h.device), h.shape[1])  # (batch, frames)
        valid = ~padded.flatten()  # (batch * frames,)
        weights = valid.float()
        dtype = torch.promote_types(h.dtype, torch.float32)
        restarting = self.training and self.dead_code_threshold > 0
        with torch.autocast(device_type=h.device.type, enabled=False):
            flat = h.reshape(-1, self.dim).to(dtype)  # (batch * frames, dim)
            count = weights.sum().clamp(min=1.0)
            if restarting:
                self.restart_dead_codes(flat.detach(), valid)
            codes = self.nearest(flat.detach())  # (batch * frames,)
            selected = self.codebook.to(dtype)[codes]  # (batch * frames, dim)
            # mean squared errors over the valid frames and the dimensions
            codebook_loss = ((selected - flat.detach()).pow(2).mean(dim=1) * weights).sum() / count
            commitment_loss = ((flat - selected.detach()).pow(2).mean(dim=1) * weights).sum() / count
            straight_through = flat + (selected - flat).detach()  # value e_k, gradient identity to h
        quantized = (straight_through * weights[:, None]).to(h.dtype).view(h.shape)  # (batch, frames, dim)
        counts = self.code_counts(codes, valid)  # (K,)
        if restarting:
            self.update_usage(counts)
        with torch.no_grad():
            probabilities = counts.to(dtype) / count  # (K,)
            entropy = -torch.special.xlogy(probabilities, probabilities).sum()
            code_usage = (probabilities > 0).to(dtype).mean()
        return VectorQuantizerOutput(
            quantized=quantized,
            codes=codes.masked_fill(~valid, -1).view(padded.shape),  # (batch, frames)
            codebook_loss=codebook_loss,
            commitment_loss=commitment_loss,
            loss=codebook_loss + self.commitment_weight * commitment_loss,
            perplexity=entropy.exp(),
            code_usage=code_usage,
        )

    def extra_repr(self) -> str:
        return (
            f"codebook_size={self.codebook_size}, dim={self.dim}, commitment_weight={self.commitment_weight}, "
            f"dead_code_threshold={self.dead_code_threshold}, usage_decay={self.usage_decay}"
        )


__all__ = ["VectorQuantizer", "VectorQuantizerOutput"]
