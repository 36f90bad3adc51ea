"""Barlow Twins: redundancy reduction between the embeddings of two augmented views.

Zbontar, Jing, Misra, LeCun, Deny (2021), "Barlow Twins: Self-Supervised Learning via
Redundancy Reduction", ICML, eq. 1; applied to speech by Brima, Krumnack, Pika, Heidemann
(2024), "Understanding Self-Supervised Learning of Speech Representation via Invariance
and Redundancy Reduction" (Information 15(2):114).

The method module also carries the study's loss variants on the same two-view
architecture: the Modified Barlow Twins of Brima et al. (normalised latents, for scale
invariance), VICReg (:mod:`speechssl.methods.vicreg`), the invariance-only and
redundancy-only ablations, and utterance- vs frame-level objectives; every variant logs
the collapse statistics of :mod:`speechssl.methods.collapse`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from speechssl import distributed
from speechssl.augment.views import ViewConfig, build_view
from speechssl.augment.waveform import RandomCrop
from speechssl.data.batch import AudioBatch, lengths_to_padding_mask
from speechssl.methods.base import MethodOutput, PretextMethod
from speechssl.methods.collapse import CollapseMonitor
from speechssl.methods.vicreg import VICRegLoss, check_global_rows
from speechssl.models import FeatureTransform, ProjectorMLP, SpeechEncoder, masked_mean


def _identity(tensor: torch.Tensor) -> torch.Tensor:
    return tensor


def cross_correlation(
    z_a: torch.Tensor, z_b: torch.Tensor, eps: float = 1e-5, gather_distributed: bool = True
) -> torch.Tensor:
    """Empirical cross-correlation matrix ``C`` of two batches of embeddings (Zbontar et al. 2021, eq. 2).

    Each embedding dimension is standardised along the batch (zero mean, unit variance,
    the biased variance plus ``eps`` as in ``BatchNorm1d(affine=False)`` of the reference
    implementation), then ``C = z_aᵀ z_b / N``, so ``C_ij ∈ [-1, 1]`` and ``C_ii = 1`` for
    identical views. Computed in at least float32, with autocast disabled.

    Under data parallelism (``gather_distributed`` and :func:`speechssl.distributed.is_distributed`)
    the means, variances and ``C`` are sums all-reduced over ranks with ``N`` the global batch,
    so ``C`` equals the single-process matrix of the concatenated batch; gradients flow
    through the reductions (see :mod:`speechssl.distributed` for the gradient convention).

    Args:
        z_a: ``(batch, dim)`` embeddings of the first view.
        z_b: ``(batch, dim)`` embeddings of the second view (same rows, other augmentation).
        eps: added to the variance before dividing, guards constant dimensions.
        gather_distributed: reduce statistics over ranks when a process group is active.

    Returns:
        ``(dim, dim)`` matrix with ``C[i, j]`` the correlation of ``z_a[:, i]`` and ``z_b[:, j]``.

    Raises:
        ValueError: if ``z_a`` and ``z_b`` are not equal-shape ``(batch, dim)`` matrices, or
            if the (global) batch has fewer than 2 rows.
    """
    if z_a.dim() != 2 or z_a.shape != z_b.shape:
        raise ValueError(
            f"expected z_a and z_b of equal shape (batch, dim), found {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    gathered = gather_distributed and distributed.is_distributed()
    reduce = distributed.all_reduce_sum if gathered else _identity
    check_global_rows(z_a.shape[0], distributed.world_size() if gathered else 1)
    count = reduce(torch.tensor(float(z_a.shape[0]), device=z_a.device)) if gathered else z_a.shape[0]
    dtype = torch.promote_types(z_a.dtype, torch.float32)
    with torch.autocast(device_type=z_a.device.type, enabled=False):
        z = torch.stack([z_a.to(dtype), z_b.to(dtype)])  # (2, batch, dim)
        mean = reduce(z.sum(dim=1, keepdim=True)) / count  # (2, 1, dim)
        centred = z - mean  # (2, batch, dim)
        variance = reduce(centred.pow(2).sum(dim=1, keepdim=True)) / count  # (2, 1, dim)
        z_a_norm, z_b_norm = centred / torch.sqrt(variance + eps)  # (batch, dim) each
        return reduce(z_a_norm.T @ z_b_norm) / count  # (dim, batch) @ (batch, dim) -> (dim, dim)


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The ``n² - n`` off-diagonal entries of a square ``(n, n)`` matrix, flattened row-major."""
    n, m = matrix.shape
    if n != m:
        raise ValueError(f"expected a square matrix, found shape {(n, m)}")
    # (n*n - 1,) without the last diagonal entry -> (n - 1, n + 1): each row starts on a diagonal entry
    rows = matrix.flatten()[:-1].view(n - 1, n + 1)
    return rows[:, 1:].flatten()  # (n - 1, n) -> (n * (n - 1),)


@dataclass
class BarlowTwinsLossOutput:
    """Terms of the Barlow Twins objective.

    Attributes:
        loss: scalar ``scale_loss · (α · invariance + λ · redundancy)``.
        invariance: scalar ``Σ_i (1 − C_ii)²``.
        redundancy: scalar ``Σ_{i≠j} C_ij²`` (not multiplied by λ).
        cross_correlation: ``(dim, dim)`` the matrix ``C`` (global under data parallelism).
    """

    loss: torch.Tensor
    invariance: torch.Tensor
    redundancy: torch.Tensor
    cross_correlation: torch.Tensor


class BarlowTwinsLoss(nn.Module):
    """Barlow Twins loss (Zbontar et al. 2021, eq. 1):
    ``L = α Σ_i (1 − C_ii)² + λ Σ_i Σ_{j≠i} C_ij²`` with ``C`` from :func:`cross_correlation`.

    The invariance term pulls the two views' embeddings together; the redundancy
    reduction term decorrelates the embedding dimensions. ``α = 1`` is the paper's loss;
    ``α = 0`` keeps redundancy reduction only and ``λ = 0`` invariance only (the study's
    ablations). With ``normalize_latents`` every embedding is first scaled to unit L2 norm,
    the Modified Barlow Twins of Brima et al. (2024), whose loss is then invariant to the
    scale of each embedding. Under data parallelism the batch statistics and ``C`` are
    global, so the loss equals the single-process loss on the concatenated batch.

    Args:
        lambda_: weight λ of the redundancy term; the paper uses 0.0051 (≈ 5e-3).
        scale_loss: factor multiplying the whole loss (the reference code's ``scale-loss``).
        eps: variance stabiliser of the standardisation.
        gather_distributed: compute statistics over all ranks when a process group is active.
        invariance_weight: weight α of the invariance term.
        normalize_latents: L2-normalise each embedding before the cross-correlation.
    """

    def __init__(
        self,
        lambda_: float = 5e-3,
        scale_loss: float = 1.0,
        eps: float = 1e-5,
        gather_distributed: bool = True,
        invariance_weight: float = 1.0,
        normalize_latents: bool = False,
    ) -> None:
        super().__init__()
        if lambda_ < 0:
            raise ValueError(f"lambda_: expected >= 0, found {lambda_}")
        if invariance_weight < 0:
            raise ValueError(f"invariance_weight: expected >= 0, found {invariance_weight}")
        if invariance_weight == 0 and lambda_ == 0:
            raise ValueError(
                "invariance_weight/lambda_: expected at least one term with a positive weight, found 0/0"
            )
        if scale_loss <= 0:
            raise ValueError(f"scale_loss: expected > 0, found {scale_loss}")
        if eps < 0:
            raise ValueError(f"eps: expected >= 0, found {eps}")
        self.lambda_ = lambda_
        self.scale_loss = scale_loss
        self.eps = eps
        self.gather_distributed = gather_distributed
        self.invariance_weight = invariance_weight
        self.normalize_latents = normalize_latents

    def forward(self, z_a: torch.Tensor, z_b: torch.Tensor) -> BarlowTwinsLossOutput:
        """Args:
            z_a: ``(batch, dim)`` projector outputs of the first view.
            z_b: ``(batch, dim)`` projector outputs of the second view.

        Returns:
            the loss, its two terms and ``C``.
        """
        if self.normalize_latents:
            z_a = nn.functional.normalize(z_a, dim=1)  # (batch, dim), unit L2 norm per embedding
            z_b = nn.functional.normalize(z_b, dim=1)  # (batch, dim)
        c = cross_correlation(z_a, z_b, eps=self.eps, gather_distributed=self.gather_distributed)
        invariance = (1.0 - torch.diagonal(c)).pow(2).sum()
        redundancy = off_diagonal(c).pow(2).sum()
        loss = self.scale_loss * (self.invariance_weight * invariance + self.lambda_ * redundancy)
        return BarlowTwinsLossOutput(loss, invariance, redundancy, c)

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, scale_loss={self.scale_loss}, eps={self.eps}, "
            f"invariance_weight={self.invariance_weight}, normalize_latents={self.normalize_latents}"
        )


@dataclass
class VICRegConfig:
    """Weights of the VICReg loss (Bardes et al. 2022; defaults from the paper).

    Attributes:
        invariance_weight: λ.
        variance_weight: μ.
        covariance_weight: ν.
        gamma: target standard deviation γ.
    """

    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0
    gamma: float = 1.0


@dataclass
class BarlowTwinsConfig:
    """Barlow Twins for speech, and the study's variants of it.

    Attributes:
        projector: hidden and output widths of the projector MLP after the pooled
            encoder output (Linear → BatchNorm → ReLU per hidden layer, final Linear
            without bias): its depth and width. The paper's ImageNet projector is
            ``[8192, 8192, 8192]``; the default suits tiny encoders.
        loss: ``barlow_twins`` (cross-correlation to the identity) or ``vicreg``.
        lambda_: redundancy weight λ (paper: 0.0051); ``0`` ablates redundancy reduction.
        invariance_weight: weight α of the invariance term; ``0`` ablates it.
        normalize_latents: the Modified Barlow Twins of Brima et al. (2024): unit-norm
            embeddings before the cross-correlation.
        scale_loss: factor multiplying the loss.
        level: ``utterance`` (the hidden state is mean-pooled over valid frames before the
            projector) or ``frame`` (every valid frame is projected and the two views'
            frames are paired: both views share one crop and must keep durations).
        layer: index into the encoder's hidden states of the representation that is
            pooled (``-1``: last layer; ``0``: front-end output).
        vicreg: the VICReg weights (``loss: vicreg``).
        view: augmentation of each of the two views.
    """

    projector: list[int] = field(default_factory=lambda: [256, 256])
    loss: Literal["barlow_twins", "vicreg"] = "barlow_twins"
    lambda_: float = 5e-3
    invariance_weight: float = 1.0
    normalize_latents: bool = False
    scale_loss: float = 1.0
    level: Literal["utterance", "frame"] = "utterance"
    layer: int = -1
    vicreg: VICRegConfig = field(default_factory=VICRegConfig)
    view: ViewConfig = field(default_factory=ViewConfig)

    def __post_init__(self) -> None:
        if not self.projector or any(width < 1 for width in self.projector):
            raise ValueError(
                f"projector: expected a non-empty list of positive widths, found {self.projector}"
            )
        if self.lambda_ < 0:
            raise ValueError(f"lambda_: expected >= 0, found {self.lambda_}")
        if self.scale_loss <= 0:
            raise ValueError(f"scale_loss: expected > 0, found {self.scale_loss}")
        if self.level == "frame" and self.view.changes_durations:
            raise ValueError(
                "level: 'frame' pairs the two views frame by frame, which needs views that keep durations; "
                f"found view.speed.p={self.view.speed.p} and view.tempo.p={self.view.tempo.p} (set both to 0)"
            )


def build_twin_loss(config: BarlowTwinsConfig) -> nn.Module:
    """The loss of ``config``: :class:`BarlowTwinsLoss` (with its variant) or VICReg."""
    if config.loss == "vicreg":
        weights = config.vicreg
        return VICRegLoss(
            weights.invariance_weight, weights.variance_weight, weights.covariance_weight, weights.gamma
        )
    return BarlowTwinsLoss(
        lambda_=config.lambda_,
        scale_loss=config.scale_loss,
        invariance_weight=config.invariance_weight,
        normalize_latents=config.normalize_latents,
    )


class BarlowTwins(PretextMethod):
    """Barlow Twins pretraining of a speech encoder (Zbontar et al. 2021; Brima et al. 2023).

    Each utterance is augmented twice independently (waveform pipeline before the
    encoder, SpecAugment masks inside its front-end); hidden state ``layer`` is mean
    pooled over valid frames, projected, and the two views' projections enter
    :class:`BarlowTwinsLoss`.

    Args:
        encoder: the encoder being pretrained.
        config: projector, loss and augmentation settings.
        generator: source of the augmentation randomness (global torch RNG when None);
            checkpoint its ``get_state()`` to resume reproducibly.

    The views and crops are built at the encoder's ``sample_rate``.
    """

    # the cross-correlation standardises over the batch, and the projector has batch norm
    min_batch_size = 2

    def __init__(
        self,
        encoder: SpeechEncoder,
        config: BarlowTwinsConfig,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        sample_rate = encoder.sample_rate
        self.config = config
        self.projector = ProjectorMLP(
            encoder.dim, list(config.projector[:-1]), config.projector[-1], batch_norm=True, last_bias=False
        )
        self.loss = build_twin_loss(config)
        frame_level = config.level == "frame"
        self.view = build_view(config.view, sample_rate, crop=not frame_level)
        self.shared_crop = (
            RandomCrop(config.view.crop_seconds, sample_rate)
            if frame_level and config.view.crop_seconds is not None
            else None
        )
        self.generator = generator
        self.monitor = CollapseMonitor()
        self.collapse: dict[str, torch.Tensor] | None = None  # the last batch's collapse statistics
        self.collapse_shape = (0, 0)

    def _hidden(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, feature_transform: FeatureTransform | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Hidden state ``layer`` ``(batch, frames, dim)`` of ``waveforms (batch, samples)`` and its frame lengths."""
        output = self.encoder(waveforms, lengths, feature_transform=feature_transform)
        count = len(output.hidden_states)
        if not -count <= self.config.layer < count:
            raise ValueError(
                f"layer: expected an index into the encoder's {count} hidden states "
                f"(-{count}..{count - 1}), found {self.config.layer}"
            )
        return output.hidden_states[self.config.layer], output.lengths

    def _project(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, feature_transform: FeatureTransform | None
    ) -> torch.Tensor:
        """``waveforms (batch, samples)`` → encoder → pooled hidden state ``layer`` → ``(batch, proj_dim)``."""
        hidden, frame_lengths = self._hidden(waveforms, lengths, feature_transform)
        return self.projector(masked_mean(hidden, frame_lengths))  # (batch, dim) -> (batch, proj_dim)

    def project_views(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Projections ``z_a, z_b`` of two independent augmentations: ``(batch, proj_dim)`` at
        utterance level, ``(valid frames, proj_dim)`` at frame level (rows paired frame by frame).

        Args:
            waveforms: ``(batch, samples)`` zero-padded audio.
            lengths: ``(batch,)`` valid samples per utterance.
            generator: augmentation randomness (default: the method's own, else the global RNG).
        """
        generator = generator if generator is not None else self.generator
        if self.config.level == "utterance":
            projections = []
            for _ in range(2):
                view, view_lengths = self.view(waveforms, lengths, generator)
                projections.append(self._project(view, view_lengths, self.view.feature_transform(generator)))
            return projections[0], projections[1]
        if self.shared_crop is not None:
            waveforms, lengths = self.shared_crop(waveforms, lengths, generator)
        frames = []
        for _ in range(2):
            view, view_lengths = self.view(waveforms, lengths, generator)
            hidden, frame_lengths = self._hidden(view, view_lengths, self.view.feature_transform(generator))
            valid = ~lengths_to_padding_mask(frame_lengths, hidden.shape[1])  # (batch, frames)
            frames.append(self.projector(hidden[valid]))  # (valid frames, dim) -> (valid frames, proj_dim)
        return frames[0], frames[1]

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """The loss of two augmented views of ``batch``.

        Returns:
            the loss and, as metrics, the loss's terms, the mean diagonal and mean absolute
            off-diagonal entry of the views' cross-correlation ``C``, and the collapse
            statistics of the first view's embeddings (``embedding_std``, ``effective_rank``,
            ``collapsed``), all tensors: the step reads nothing back to the host.
        """
        z_a, z_b = self.project_views(batch.waveforms, batch.lengths)
        terms = self.loss(z_a, z_b)
        if isinstance(terms, BarlowTwinsLossOutput):
            c = terms.cross_correlation.detach()
            metrics = {"invariance": terms.invariance.detach(), "redundancy": terms.redundancy.detach()}
        else:
            c = cross_correlation(z_a.detach(), z_b.detach())
            metrics = {
                "invariance": terms.invariance.detach(),
                "variance": terms.variance.detach(),
                "covariance": terms.covariance.detach(),
            }
        metrics["on_diagonal_mean"] = torch.diagonal(c).mean()
        metrics["off_diagonal_abs_mean"] = off_diagonal(c).abs().mean()
        self.collapse = self.monitor.statistics(z_a)
        self.collapse_shape = (z_a.shape[0], z_a.shape[1])
        metrics.update(self.collapse)
        return MethodOutput(terms.loss, metrics)

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Every ``monitor.warn_every`` updates, warn if the last batch's embeddings collapsed
        (the only host read this method makes, outside the training step)."""
        if self.collapse is not None and step % self.monitor.warn_every == 0:
            self.monitor.warn_if_collapsed(self.collapse, self.collapse_shape, calls=self.monitor.warn_every)

    @torch.no_grad()
    def embed(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Projector outputs without augmentation, e.g. for cross-correlation analysis.

        Uses the modules in their current mode; call ``.eval()`` first for running
        BatchNorm statistics.

        Args:
            waveforms: ``(batch, samples)`` zero-padded audio.
            lengths: ``(batch,)`` valid samples per utterance.

        Returns:
            ``(batch, proj_dim)`` embeddings.
        """
        return self._project(waveforms, lengths, None)


__all__ = [
    "BarlowTwins",
    "BarlowTwinsConfig",
    "BarlowTwinsLoss",
    "BarlowTwinsLossOutput",
    "VICRegConfig",
    "build_twin_loss",
    "cross_correlation",
    "off_diagonal",
]
