"""data2vec: regression of masked frames onto an EMA teacher's averaged top-layer outputs.

Baevski, Hsu, Xu, Babu, Gu, Auli (2022), "data2vec: A General Framework for Self-supervised
Learning in Speech, Vision and Language", ICML. A student encodes the input with spans of
frames replaced by a learned mask embedding (wav2vec 2.0 masking, §3.2); a teacher with the
same architecture, whose weights ``Δ`` are an exponential moving average of the student's
``θ`` (§3.3, eq. 1), encodes the *unmasked* input. The target at frame ``t`` is the average
of the teacher's top ``K`` layer outputs, each instance-normalised over time (§3.3, eq. 2):

    y_t = (1/K) Σ_{l=L−K+1}^{L} â_t^l,     â^l = InstanceNorm(a^l)

and a linear regression head on the student's last hidden state ``f_t(x)`` is trained with
the Smooth L1 loss of §3.4 (eq. 3) at the masked steps ``M`` only:

    L = (1/|M|) Σ_{t ∈ M} ℓ_β(y_t, f_t(x)),
    ℓ_β(y, f) = ½ (y − f)² / β  if |y − f| ≤ β,  else |y − f| − ½ β       (per dimension)

After every update the teacher moves towards the student, ``Δ ← τ Δ + (1 − τ) θ``, with
``τ`` rising linearly from ``τ0`` to ``τe`` over the first ``n`` updates, then constant (§3.3).

Section and equation numbers follow the arXiv version (2202.03555).

Deviations from the reference speech model (see also the options below): the
targets are normalised over the valid frames of each utterance only (padding never enters
the statistics); the Transformer is pre-LN, so the "FFN output before the last residual
connection" (§3.3) is ``FFN(LN(x))``; the loss is a plain mean over masked frames and
dimensions (the reference sums over dimensions and divides by ``√dim``, a constant factor);
the positional convolution is averaged like every other teacher weight (the reference's
``ema_layers_only`` copies it from the student instead).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.data.batch import AudioBatch
from speechssl.methods.base import MaskedPredictionMethod, MethodOutput
from speechssl.models.encoder import SpeechEncoder
from speechssl.models.frontends import utterance_mean_variance_norm
from speechssl.models.init import init_linear_
from speechssl.models.masking import check_span_start_options, span_start_mask
from speechssl.models.padding import zero_padding_frames
from speechssl.models.transformer import TransformerEncoder


@dataclass
class EmaDecaySchedule:
    """``τ(n) = τ0 + (τe − τ0) · min(n, N) / N``, data2vec's teacher decay (Baevski et al. 2022, §3.3).

    ``n`` is the number of updates done; the reference implementation sets ``τ(n)`` after
    update ``n`` and applies it at once, as :meth:`Data2Vec.on_step_end` does.

    Attributes:
        start: ``τ0`` (0.999).
        end: ``τe`` (0.9999), held after ``anneal_steps``.
        anneal_steps: ``N`` updates of the linear ramp (30000 for speech); 0 gives ``τe`` throughout.
    """

    start: float = 0.999
    end: float = 0.9999
    anneal_steps: int = 30000

    def __post_init__(self) -> None:
        if not 0.0 <= self.start <= self.end <= 1.0:
            raise ValueError(
                f"ema.start/ema.end: expected 0 <= start <= end <= 1, found start={self.start}, end={self.end}"
            )
        if self.anneal_steps < 0:
            raise ValueError(f"ema.anneal_steps: expected >= 0, found {self.anneal_steps}")

    def __call__(self, step: int) -> float:
        """``τ`` after ``step`` updates."""
        if step < 0:
            raise ValueError(f"step: expected >= 0, found {step}")
        if step >= self.anneal_steps:
            return self.end
        return self.start + (self.end - self.start) * step / self.anneal_steps


@dataclass
class Data2VecConfig:
    """data2vec's speech objective; defaults are the speech BASE model's (Baevski et al. 2022, §4.2).

    Attributes:
        mask_prob: ``p``, probability of each frame starting a masked span (0.065, wav2vec 2.0's
            definition: about 49% of the frames end up masked).
        mask_length: ``M``, frames per masked span (10).
        min_masks: fewest spans per utterance (2, as in the reference implementation).
        top_k_layers: ``K``, teacher layers averaged into the target (8 of BASE's 12).
        ema: the teacher decay schedule ``τ0 → τe`` over ``n`` updates (0.999 → 0.9999 over 30k).
        loss_beta: ``β`` of the Smooth L1 loss (§3.4, eq. 3). 0 means the squared error ``(y − f)²``:
            the reference speech setting (``loss_beta: 0`` of its LibriSpeech pretraining config,
            which switches to the squared error; the paper's Smooth L1 with ``β → 0`` would be
            L1 instead), hence the default. ``β > 0`` gives Smooth L1.
        instance_norm_targets: instance-normalise each of the top-``K`` layer outputs over the
            valid frames of its utterance before averaging (§3.3; True for speech).
        target_layer_output: what a teacher layer contributes: ``"ffn"`` its feed-forward
            output before the last residual connection (§3.3; pre-LN here, ``FFN(LN(x))``) or
            ``"layer"`` its output hidden state (the last one after the final LayerNorm).
            Recurrent context networks have no feed-forward block and need ``"layer"``.
        ema_transformer_only: True: the teacher is an EMA of the context network only and reads
            the student front-end's output (unmasked, before its output dropout), as in the speech
            model (§3.3); False: the teacher is an EMA of the whole encoder, front-end included.
    """

    mask_prob: float = 0.065
    mask_length: int = 10
    min_masks: int = 2
    top_k_layers: int = 8
    ema: EmaDecaySchedule = field(default_factory=EmaDecaySchedule)
    loss_beta: float = 0.0
    instance_norm_targets: bool = True
    target_layer_output: Literal["ffn", "layer"] = "ffn"
    ema_transformer_only: bool = True

    def __post_init__(self) -> None:
        check_span_start_options(self.mask_prob, self.mask_length, self.min_masks)
        if self.top_k_layers < 1:
            raise ValueError(f"top_k_layers: expected a positive integer, found {self.top_k_layers}")
        if self.loss_beta < 0:
            raise ValueError(f"loss_beta: expected >= 0 (0: squared error), found {self.loss_beta}")
        if self.target_layer_output not in ("ffn", "layer"):
            raise ValueError(
                f"target_layer_output: expected 'ffn' or 'layer', found {self.target_layer_output!r}"
            )


def average_top_layers(
    layer_outputs: list[torch.Tensor], lengths: torch.Tensor, top_k: int, instance_norm: bool = True
) -> torch.Tensor:
    """The targets ``y_t = (1/K) Σ_{l=L−K+1}^{L} â_t^l`` (Baevski et al. 2022, §3.3, eq. 2).

    Args:
        layer_outputs: ``L`` tensors ``(batch, frames, dim)``, the teacher's layers bottom to top.
        lengths: ``(batch,)`` valid frames per utterance.
        top_k: ``K``, how many of the top layers to average.
        instance_norm: normalise each layer per utterance and channel to zero mean and unit
            variance over the valid frames (biased variance, ε = 1e-5, as ``F.instance_norm``).

    Returns:
        ``(batch, frames, dim)`` float32 targets, zero on padded frames.
    """
    if not 1 <= top_k <= len(layer_outputs):
        raise ValueError(
            f"top_k_layers: expected 1 to {len(layer_outputs)} (the layers given), found {top_k}"
        )
    top = [output.float() for output in layer_outputs[-top_k:]]
    if instance_norm:
        top = [utterance_mean_variance_norm(output, lengths) for output in top]
    targets = torch.stack(top).mean(dim=0)  # (K, batch, frames, dim) -> (batch, frames, dim)
    return zero_padding_frames(targets, lengths)


def masked_regression_loss(
    predictions: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """``(1/|M|) Σ_{t ∈ M} mean_d ℓ_β(y_td, f_td)`` (Baevski et al. 2022, §3.4, eq. 3); zero when ``M`` is empty.

    Args:
        predictions: ``(batch, frames, dim)`` the student's regression outputs ``f_t(x)``.
        targets: ``(batch, frames, dim)`` the teacher targets ``y_t``.
        mask: ``(batch, frames)`` bool, the masked steps ``M`` that count.
        beta: ``β`` of Smooth L1; 0 gives the squared error ``(y − f)²`` (the reference speech setting).

    Returns:
        scalar float32 loss.
    """
    predictions, targets = predictions.float(), targets.float()
    if beta == 0:
        elementwise = F.mse_loss(predictions, targets, reduction="none")  # (batch, frames, dim)
    else:
        elementwise = F.smooth_l1_loss(predictions, targets, reduction="none", beta=beta)
    # every frame is scored and the unmasked ones zeroed: no data-dependent selection (no host sync)
    elementwise = elementwise.masked_fill(~mask[..., None], 0.0)  # (batch, frames, dim)
    return elementwise.sum() / (mask.sum() * elementwise.shape[-1]).clamp(min=1)


def masked_variance(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Variance over the masked frames (biased), averaged over dimensions; zero when none is masked.

    Args:
        x: ``(batch, frames, dim)``.
        mask: ``(batch, frames)`` bool, the frames that count.
    """
    x = x.detach().float()
    weights = mask[..., None].float()  # (batch, frames, 1)
    count = weights.sum().clamp(min=1)
    mean = (x * weights).sum(dim=(0, 1)) / count  # (dim,)
    return ((x - mean).pow(2) * weights).sum(dim=(0, 1)).div(count).mean()


def feed_forward_outputs(context: TransformerEncoder, run: Callable[[], Any]) -> list[torch.Tensor]:
    """The feed-forward output ``FFN(LN(h))`` of every layer of ``context``, before its residual add.

    Args:
        context: the Transformer, in eval mode (no LayerDrop: every layer runs).
        run: runs ``context`` once, e.g. ``lambda: context(x, lengths)`` or the forward of
            the encoder around it.

    Returns:
        one ``(batch, frames, dim)`` tensor per layer, bottom to top.
    """
    outputs: list[torch.Tensor] = []
    handles = [
        layer.ffn.register_forward_hook(lambda module, inputs, output: outputs.append(output))
        for layer in context.layers
    ]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    if len(outputs) != len(context.layers):
        raise RuntimeError(
            f"teacher: expected one feed-forward output per layer ({len(context.layers)}), found {len(outputs)}"
        )
    return outputs


class Data2Vec(MaskedPredictionMethod):
    """data2vec pretraining of a speech encoder (Baevski et al. 2022), any front-end.

    Student: the encoder with the drawn mask (front-end → masked frames replaced by its
    mask embedding → context network) → linear regression head on the last hidden state. Teacher: a frozen
    copy (``self.teacher``: a registered submodule with ``requires_grad=False``, always in
    eval mode, so it is saved in checkpoints and resumes exactly), updated by EMA in
    :meth:`on_step_end`. The optimizer never sees it (the trainer collects trainable
    parameters only).

    Data parallelism needs no communication for the teacher: DDP leaves every rank with
    identical student weights after each update, and every rank applies the same
    deterministic EMA to identical teacher weights, so the teachers stay identical.

    Args:
        encoder: the encoder being pretrained (fbank, waveform or units front-end), with a
            mask embedding (added by :class:`~speechssl.methods.base.MaskedPredictionMethod`).
        config: the objective's settings.
        generator: source of the masking randomness (global RNG when None).
    """

    def __init__(
        self, encoder: SpeechEncoder, config: Data2VecConfig, generator: torch.Generator | None = None
    ) -> None:
        super().__init__(encoder)
        num_layers = len(encoder.context.layers)
        if config.top_k_layers > num_layers:
            raise ValueError(
                f"top_k_layers: expected at most the encoder's {num_layers} context layers, "
                f"found {config.top_k_layers}"
            )
        if config.target_layer_output == "ffn" and not isinstance(encoder.context, TransformerEncoder):
            raise ValueError(
                "target_layer_output: expected 'layer' with a recurrent context network (it has no "
                f"feed-forward block), found 'ffn' with encoder.context={encoder.config.context!r}"
            )
        self.encoder = encoder
        self.config = config
        self.generator = generator
        self.regression_head = nn.Linear(encoder.dim, encoder.dim)
        init_linear_(self.regression_head)
        teacher = copy.deepcopy(encoder.context if config.ema_transformer_only else encoder)
        teacher.requires_grad_(False)
        self.teacher = teacher.eval()
        self.register_buffer("ema_decay", torch.tensor(config.ema(0)))

    def train(self, mode: bool = True) -> Data2Vec:
        """Set the student's mode; the teacher stays in eval mode (no dropout, no LayerDrop)."""
        super().train(mode)
        self.teacher.eval()
        return self

    def compute_mask(self, frame_lengths: torch.Tensor, frames: int) -> torch.Tensor:
        """``(batch, frames)`` bool span mask over the valid frames (wav2vec 2.0 §3.1, data2vec §3.2).

        Each utterance gets ``max(min_masks, int(p·length + U))`` span starts of ``M`` frames,
        ``U ~ Uniform[0, 1)``.
        """
        config = self.config
        return span_start_mask(
            frame_lengths, frames, config.mask_prob, config.mask_length, config.min_masks, self.generator
        )

    @torch.no_grad()
    def teacher_targets(
        self, waveforms: torch.Tensor, lengths: torch.Tensor, clean: torch.Tensor, frame_lengths: torch.Tensor
    ) -> torch.Tensor:
        """The teacher's targets ``y_t`` of the unmasked input (§3.3), without gradient.

        Args:
            waveforms: ``(batch, samples)`` zero-padded audio (read when the teacher has its own front-end).
            lengths: ``(batch,)`` valid samples per utterance.
            clean: ``(batch, frames, dim)`` the student front-end's output before dropout (read
                when ``ema_transformer_only``).
            frame_lengths: ``(batch,)`` valid frames per utterance.

        Returns:
            ``(batch, frames, dim)`` float32 targets, zero on padded frames.
        """
        if self.config.ema_transformer_only:
            context = self.teacher

            def run() -> list[torch.Tensor]:
                return self.teacher(clean.detach(), frame_lengths)
        else:
            context = self.teacher.context

            def run() -> list[torch.Tensor]:
                return self.teacher(waveforms, lengths).hidden_states

        layer_outputs = (
            feed_forward_outputs(context, run) if self.config.target_layer_output == "ffn" else run()[1:]
        )
        return average_top_layers(
            layer_outputs, frame_lengths, self.config.top_k_layers, self.config.instance_norm_targets
        )

    def forward(self, batch: AudioBatch) -> MethodOutput:
        """``(1/|M|) Σ_{t ∈ M} ℓ_β(y_t, f_t(x))`` of ``batch``.

        Returns:
            the loss and, as metrics, the current ``ema_decay`` τ, the variance over masked
            frames (averaged over dimensions) of the targets ``target_var`` (near 0 means
            collapse) and of the predictions ``prediction_var``, and the ``masked_fraction``
            of valid frames.
        """
        waveforms, lengths = batch.waveforms, batch.lengths
        frame_lengths = self.encoder.output_lengths(lengths)  # (batch,)
        frames = self.padded_frames(waveforms.shape[1])
        mask = self.compute_mask(frame_lengths, frames)  # (batch, frames)
        output = self.encoder(
            waveforms, lengths, mask_time_indices=mask, output_features=True, output_hidden_states=False
        )
        predictions = self.regression_head(output.last_hidden_state)  # (batch, frames, dim)
        targets = self.teacher_targets(
            waveforms, lengths, output.features, frame_lengths
        )  # (batch, frames, dim)
        loss = masked_regression_loss(predictions, targets, mask, self.config.loss_beta)
        metrics = {
            "ema_decay": self.ema_decay.detach().clone(),
            "target_var": masked_variance(targets, mask),
            "prediction_var": masked_variance(predictions, mask),
            "masked_fraction": mask.sum() / frame_lengths.sum(),
        }
        return MethodOutput(loss, metrics)

    @torch.no_grad()
    def ema_update(self, decay: float) -> None:
        """``Δ ← τ Δ + (1 − τ) θ`` for every teacher parameter (§3.3, eq. 1); buffers are copied from the student."""
        student = self.encoder.context if self.config.ema_transformer_only else self.encoder
        student_parameters = dict(student.named_parameters())
        for name, parameter in self.teacher.named_parameters():
            parameter.mul_(decay).add_(student_parameters[name].detach(), alpha=1.0 - decay)
        student_buffers = dict(student.named_buffers())
        for name, buffer in self.teacher.named_buffers():
            buffer.copy_(student_buffers[name])

    def on_step_end(self, step: int, max_steps: int) -> None:
        """Set ``τ = ema(step)`` and move the teacher towards the student (§3.3, eq. 1)."""
        decay = self.config.ema(step)
        self.ema_decay.fill_(decay)
        if decay < 1.0:
            self.ema_update(decay)


__all__ = [
    "Data2Vec",
    "Data2VecConfig",
    "EmaDecaySchedule",
    "average_top_layers",
    "feed_forward_outputs",
    "masked_regression_loss",
    "masked_variance",
]
