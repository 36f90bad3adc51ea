"""Downstream heads trained on frozen upstream features.

Utterance-level heads (:class:`LinearHead`, :class:`ProjectedLinearHead`, :class:`MLPHead`) take one vector per
utterance; frame-level heads take ``(batch, frames, dim)`` with ``lengths`` and never let
padded frames reach their outputs: :class:`MeanPoolingHead` and
:class:`AttentiveStatisticsPoolingHead` pool over valid frames then classify, and
:class:`CTCHead` emits per-frame log-probabilities for connectionist temporal
classification (Graves et al. 2006). :class:`XVectorHead` embeds an utterance for speaker
verification and :class:`AdditiveMarginSoftmax` is the speaker-classification loss it is
trained with (SUPERB's ASV head).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.models.heads import ProjectorMLP
from speechssl.models.padding import reverse_padded
from speechssl.models.pooling import masked_mean, masked_mean_std


def _check_vectors(x: torch.Tensor, in_dim: int) -> None:
    if x.dim() != 2 or x.shape[1] != in_dim:
        raise ValueError(f"x: expected (batch, {in_dim}), found shape {tuple(x.shape)}")


def _check_frames(x: torch.Tensor, lengths: torch.Tensor, in_dim: int) -> None:
    if x.dim() != 3 or x.shape[2] != in_dim:
        raise ValueError(f"x: expected (batch, frames, {in_dim}), found shape {tuple(x.shape)}")
    if lengths.shape != (x.shape[0],):
        raise ValueError(f"lengths: expected shape ({x.shape[0]},), found {tuple(lengths.shape)}")
    if lengths.numel() and not (int(lengths.min()) >= 1 and int(lengths.max()) <= x.shape[1]):
        raise ValueError(
            f"lengths: expected values in [1, {x.shape[1]}] (frames), "
            f"found min {int(lengths.min())} and max {int(lengths.max())}"
        )


def _zero_padding(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``x (batch, frames, dim)`` with every frame at or after ``lengths`` set to zero.

    ``masked_fill`` rather than a product, so that non-finite padding cannot leak as NaN.
    """
    padding = lengths_to_padding_mask(lengths, x.shape[1])  # (batch, frames)
    return x.masked_fill(padding[:, :, None], 0.0)


class LinearHead(nn.Module):
    """A linear classifier: the linear probe of a frozen representation.

    Args:
        in_dim: input feature dimension.
        classes: number of classes (output logits).
    """

    def __init__(self, in_dim: int, classes: int) -> None:
        super().__init__()
        if in_dim < 1 or classes < 1:
            raise ValueError(f"in_dim/classes: expected positive sizes, found {in_dim}/{classes}")
        self.in_dim = in_dim
        self.linear = nn.Linear(in_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, in_dim)`` -> logits ``(batch, classes)``."""
        _check_vectors(x, self.in_dim)
        return self.linear(x)


class ProjectedLinearHead(nn.Module):
    """SUPERB's utterance-level linear model on pooled features: ``Linear -> Linear``, no non-linearity.

    Yang et al. 2021 (SUPERB, §3) and s3prl's ``UtteranceLevel`` downstream (used for KS, IC,
    SID and ER): a linear projector to ``projector_dim`` (256), mean pooling over frames, then
    a linear classifier. Both maps are linear, so pooling first and projecting after gives the
    same logits; this head reads the pooled vector.

    Args:
        in_dim: input feature dimension.
        projector_dim: width of the linear projector.
        classes: number of classes (output logits).
    """

    def __init__(self, in_dim: int, projector_dim: int, classes: int) -> None:
        super().__init__()
        if min(in_dim, projector_dim, classes) < 1:
            raise ValueError(
                f"in_dim/projector_dim/classes: expected positive sizes, found {in_dim}/{projector_dim}/{classes}"
            )
        self.in_dim = in_dim
        self.projector = nn.Linear(in_dim, projector_dim)
        self.linear = nn.Linear(projector_dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, in_dim)`` -> logits ``(batch, classes)``."""
        _check_vectors(x, self.in_dim)
        return self.linear(self.projector(x))


class MLPHead(nn.Module):
    """A one-hidden-layer classifier: ``Dropout -> Linear -> ReLU -> Linear``.

    The two Linear layers (with biases, no batch normalisation) are the toolkit's
    :class:`~speechssl.models.heads.ProjectorMLP`; dropout (Srivastava et al. 2014) acts
    on the input features, the usual regulariser of a probe on frozen features.

    Args:
        in_dim: input feature dimension.
        hidden: width of the hidden layer.
        classes: number of classes (output logits).
        dropout: probability of zeroing an input feature during training.
    """

    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {dropout}")
        self.in_dim = in_dim
        self.dropout = nn.Dropout(dropout)
        self.mlp = ProjectorMLP(in_dim, [hidden], classes, batch_norm=False, last_bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, in_dim)`` -> logits ``(batch, classes)``."""
        _check_vectors(x, self.in_dim)
        return self.mlp(self.dropout(x))


class MeanPoolingHead(nn.Module):
    """Mean over valid frames, then an :class:`MLPHead`: the SUPERB utterance-level baseline.

    Args:
        in_dim: frame feature dimension.
        hidden: width of the MLP's hidden layer.
        classes: number of classes.
        dropout: input dropout of the MLP.
    """

    def __init__(self, in_dim: int, hidden: int, classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.in_dim = in_dim
        self.classifier = MLPHead(in_dim, hidden, classes, dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Classify each utterance from the mean of its valid frames.

        Args:
            x: ``(batch, frames, in_dim)``; frames at or after ``lengths`` are ignored.
            lengths: ``(batch,)`` valid frames per utterance, each in ``[1, frames]``.

        Returns:
            logits ``(batch, classes)``.
        """
        _check_frames(x, lengths, self.in_dim)
        return self.classifier(masked_mean(_zero_padding(x, lengths), lengths))


class AttentiveStatisticsPooling(nn.Module):
    """Attention-weighted mean and standard deviation over valid frames.

    Okabe, Koshinaka & Shinoda 2018, "Attentive Statistics Pooling for Deep Speaker
    Embedding", eqs. 5–8: a scalar score per frame ``e_t = v^T f(W h_t + b) + k`` (eq. 5)
    with ``f = tanh``, weights ``alpha_t = softmax_t(e_t)`` over the valid frames only
    (eq. 6), the weighted mean ``mu = sum_t alpha_t h_t`` (eq. 7) and the weighted
    standard deviation ``sigma = sqrt(sum_t alpha_t h_t * h_t - mu * mu)`` (eq. 8),
    computed here as ``sqrt(sum_t alpha_t (h_t - mu)^2 + eps)``, equal since the weights
    sum to one, but never negative under rounding, and with the same ``eps`` as
    :func:`~speechssl.models.pooling.masked_mean_std`.

    ``v`` and ``k`` start at zero, so an untrained layer weighs the valid frames equally
    and returns exactly the plain statistics pooling of Snyder et al. 2018.

    Args:
        in_dim: frame feature dimension ``dim``.
        attention_dim: width of the scoring layer ``W``.
        eps: added to the variance before the square root.
    """

    def __init__(self, in_dim: int, attention_dim: int = 128, eps: float = 1e-5) -> None:
        super().__init__()
        if in_dim < 1 or attention_dim < 1:
            raise ValueError(f"in_dim/attention_dim: expected positive sizes, found {in_dim}/{attention_dim}")
        self.in_dim = in_dim
        self.eps = eps
        self.projection = nn.Linear(in_dim, attention_dim)  # W, b
        self.score = nn.Linear(attention_dim, 1)  # v, k
        nn.init.zeros_(self.score.weight)
        nn.init.zeros_(self.score.bias)

    def attention(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Attention weights ``alpha`` (eqs. 5–6): ``(batch, frames)``, zero on padded frames.

        Args:
            x: ``(batch, frames, in_dim)``.
            lengths: ``(batch,)`` valid frames per utterance, each in ``[1, frames]``.
        """
        _check_frames(x, lengths, self.in_dim)
        x = _zero_padding(x, lengths)
        scores = self.score(torch.tanh(self.projection(x)))  # (batch, frames, 1)
        scores = scores.squeeze(-1)  # (batch, frames, 1) -> (batch, frames)
        padding = lengths_to_padding_mask(lengths, x.shape[1])  # (batch, frames)
        return torch.softmax(scores.masked_fill(padding, float("-inf")), dim=1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Attentive statistics of each utterance.

        Args:
            x: ``(batch, frames, in_dim)``; frames at or after ``lengths`` are ignored.
            lengths: ``(batch,)`` valid frames per utterance, each in ``[1, frames]``.

        Returns:
            ``(batch, 2 * in_dim)``: ``[mu, sigma]``.
        """
        alpha = self.attention(x, lengths)[:, :, None]  # (batch, frames) -> (batch, frames, 1)
        x = _zero_padding(x, lengths)
        mean = (alpha * x).sum(dim=1)  # (batch, in_dim)
        variance = (alpha * (x - mean[:, None, :]).pow(2)).sum(dim=1)  # (batch, in_dim)
        return torch.cat([mean, torch.sqrt(variance + self.eps)], dim=-1)


class AttentiveStatisticsPoolingHead(nn.Module):
    """:class:`AttentiveStatisticsPooling` followed by an :class:`MLPHead` on ``[mu, sigma]``.

    Args:
        in_dim: frame feature dimension.
        hidden: width of the MLP's hidden layer.
        classes: number of classes.
        dropout: input dropout of the MLP.
        attention_dim: width of the attention's scoring layer.
    """

    def __init__(
        self, in_dim: int, hidden: int, classes: int, dropout: float = 0.0, attention_dim: int = 128
    ) -> None:
        super().__init__()
        self.pooling = AttentiveStatisticsPooling(in_dim, attention_dim)
        self.classifier = MLPHead(2 * in_dim, hidden, classes, dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``x (batch, frames, in_dim)``, ``lengths (batch,)`` -> logits ``(batch, classes)``."""
        return self.classifier(self.pooling(x, lengths))


class XVectorHead(nn.Module):
    """The x-vector speaker embedding network of SUPERB's ASV task on frozen frames.

    Snyder et al. 2018, "X-Vectors: Robust DNN Embeddings for Speaker Recognition", Table 1,
    with the sizes of s3prl's ``sv_voxceleb1`` model (``XVector``, ``SP``,
    ``UtteranceExtractor``): a linear connector to ``hidden`` dimensions, five TDNN layers
    (frame contexts ``[t-2, t+2]``, ``{t-2, t, t+2}``, ``{t-3, t, t+3}``, ``{t}``, ``{t}``;
    the last widening to ``pooled_dim``) each followed by ReLU, statistics pooling over the
    valid frames (:func:`~speechssl.models.pooling.masked_mean_std`), then ``segment6``
    (linear to ``hidden``, ReLU), which is the embedding, and ``segment7`` (linear, ReLU)
    which only training uses. A TDNN layer is a dilated 1-D convolution without padding,
    so the layers read ``receptive_field = 15`` frames and an utterance of ``L`` frames
    leaves ``L − 14`` frames to pool.

    Args:
        in_dim: frame feature dimension of the upstream.
        hidden: connector, TDNN and embedding width (s3prl ``input_dim``: 512).
        pooled_dim: width of the last TDNN layer (s3prl ``agg_dim``: 1500).
    """

    CONTEXTS = ((5, 1), (3, 2), (3, 3), (1, 1), (1, 1))  # (kernel size, dilation) of each TDNN layer
    receptive_field = 1 + sum((kernel - 1) * dilation for kernel, dilation in CONTEXTS)

    def __init__(self, in_dim: int, hidden: int = 512, pooled_dim: int = 1500) -> None:
        super().__init__()
        if min(in_dim, hidden, pooled_dim) < 1:
            raise ValueError(
                f"in_dim/hidden/pooled_dim: expected positive sizes, found {in_dim}/{hidden}/{pooled_dim}"
            )
        self.in_dim = in_dim
        self.connector = nn.Linear(in_dim, hidden)
        widths = [hidden] * len(self.CONTEXTS) + [pooled_dim]
        self.tdnn = nn.ModuleList(
            nn.Conv1d(widths[i], widths[i + 1], kernel, dilation=dilation)
            for i, (kernel, dilation) in enumerate(self.CONTEXTS)
        )
        self.segment6 = nn.Linear(2 * pooled_dim, hidden)
        self.segment7 = nn.Linear(hidden, hidden)

    def embed(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The x-vector (``segment6`` after ReLU) of each utterance.

        Args:
            x: ``(batch, frames, in_dim)``; frames at or after ``lengths`` are ignored.
            lengths: ``(batch,)`` valid frames, each in ``[receptive_field, frames]``.

        Returns:
            ``(batch, hidden)``.
        """
        _check_frames(x, lengths, self.in_dim)
        if int(lengths.min()) < self.receptive_field:
            raise ValueError(
                f"lengths: the x-vector TDNN reads {self.receptive_field} frames, found an utterance "
                f"of {int(lengths.min())}"
            )
        h = self.connector(_zero_padding(x, lengths)).transpose(1, 2)  # (batch, hidden, frames)
        for layer in self.tdnn:
            h = torch.relu(layer(h))  # (batch, width, frames − context)
        pooled = masked_mean_std(
            h.transpose(1, 2), lengths - (self.receptive_field - 1)
        )  # (batch, 2 * pooled_dim)
        return torch.relu(self.segment6(pooled))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The training output (``segment7`` after ReLU): ``x (batch, frames, in_dim)``,
        ``lengths (batch,)`` -> ``(batch, hidden)``."""
        return torch.relu(self.segment7(self.embed(x, lengths)))


class AdditiveMarginSoftmax(nn.Module):
    """Additive margin softmax loss (AM-softmax; Wang et al. 2018, "Additive Margin Softmax
    for Face Verification", eq. 6): cross-entropy of ``s · (cos θ_j − m·[j = y])``, where
    ``cos θ_j`` is the cosine of the embedding and class ``j``'s weight vector.

    Args:
        dim: embedding dimension.
        classes: number of training speakers.
        scale: ``s`` (s3prl ``sv_voxceleb1``: 30).
        margin: ``m`` (s3prl: 0.4).
    """

    def __init__(self, dim: int, classes: int, scale: float = 30.0, margin: float = 0.4) -> None:
        super().__init__()
        if dim < 1 or classes < 2:
            raise ValueError(f"dim/classes: expected dim >= 1 and >= 2 classes, found {dim}/{classes}")
        self.scale = scale
        self.margin = margin
        self.weight = nn.Parameter(torch.empty(classes, dim))  # (classes, dim)
        nn.init.xavier_normal_(self.weight)

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """``x (batch, dim)`` -> ``(batch, classes)`` cosine of each embedding and class weight."""
        return F.normalize(x, dim=-1) @ F.normalize(self.weight, dim=-1).T

    def forward(self, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean loss of embeddings ``x (batch, dim)`` with class indices ``targets (batch,)``."""
        cosines = self.cosines(x)  # (batch, classes)
        margins = F.one_hot(targets, cosines.shape[1]).to(cosines.dtype) * self.margin  # (batch, classes)
        return F.cross_entropy(self.scale * (cosines - margins), targets)


class CTCHead(nn.Module):
    """A bidirectional LSTM and a linear layer giving per-frame log-probabilities for CTC.

    Connectionist temporal classification (Graves et al. 2006, §3.1): a softmax layer gives
    per-frame distributions ``y_t`` over the labels and a blank, and ``nn.CTCLoss`` sums
    ``prod_t y_t`` over every alignment of the target (eqs. 2–3). The blank is whichever
    index the loss is given (``nn.CTCLoss`` defaults to 0). The head keeps the frame rate,
    so output lengths equal input lengths.

    Each layer runs two unidirectional LSTMs (Hochreiter & Schmidhuber 1997) on the padded
    batch: one reads frames in order, the other reads each utterance's valid frames reversed
    (:func:`~speechssl.models.padding.reverse_padded`), so that in both directions padding
    comes after every valid frame and cannot reach a valid output. This is the bidirectional LSTM of packed
    sequences, computed with the dense kernels, several times faster on a CPU than PyTorch's
    packed-sequence path (``benchmarks/ctc_head.py``; 6.7x on 2 cores, BENCHMARKS.md).

    Args:
        in_dim: frame feature dimension.
        vocab_size: output symbols, the blank included.
        hidden: LSTM units per direction.
        num_layers: stacked BiLSTM layers.
        dropout: dropout between LSTM layers and before the output layer.
    """

    def __init__(
        self, in_dim: int, vocab_size: int, hidden: int = 256, num_layers: int = 2, dropout: float = 0.0
    ) -> None:
        super().__init__()
        if min(in_dim, vocab_size, hidden, num_layers) < 1:
            raise ValueError(
                "in_dim/vocab_size/hidden/num_layers: expected positive sizes, "
                f"found {in_dim}/{vocab_size}/{hidden}/{num_layers}"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {dropout}")
        self.in_dim = in_dim
        sizes = [in_dim] + [2 * hidden] * (num_layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.backward_lstms = nn.ModuleList(nn.LSTM(size, hidden, batch_first=True) for size in sizes)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden, vocab_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-frame log-probabilities in the layout ``nn.CTCLoss`` expects.

        Args:
            x: ``(batch, frames, in_dim)``; frames at or after ``lengths`` are ignored.
            lengths: ``(batch,)`` valid frames per utterance, each in ``[1, frames]``.

        Returns:
            ``log_probs (frames, batch, vocab)``, log-softmax over ``vocab`` (values on
            padded frames are meaningless and ignored by the loss), and
            ``output_lengths (batch,)`` int64, equal to ``lengths``.
        """
        _check_frames(x, lengths, self.in_dim)
        lengths = lengths.to(device=x.device, dtype=torch.long)
        hidden = _zero_padding(x, lengths)
        for layer, (forward_lstm, backward_lstm) in enumerate(
            zip(self.forward_lstms, self.backward_lstms, strict=True)
        ):
            if layer > 0:
                hidden = self.dropout(hidden)
            ahead, _ = forward_lstm(hidden)  # (batch, frames, hidden)
            behind, _ = backward_lstm(reverse_padded(hidden, lengths))  # (batch, frames, hidden), reversed
            hidden = torch.cat(
                [ahead, reverse_padded(behind, lengths)], dim=-1
            )  # (batch, frames, 2 * hidden)
            hidden = _zero_padding(hidden, lengths)
        logits = self.output(self.dropout(hidden))  # (batch, frames, vocab)
        log_probs = torch.log_softmax(logits, dim=-1)  # (batch, frames, vocab)
        log_probs = log_probs.transpose(0, 1)  # (batch, frames, vocab) -> (frames, batch, vocab)
        return log_probs, lengths
