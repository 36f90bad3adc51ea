"""Character CTC speech recognition on frozen frame features (SUPERB's ASR task, small).

A learnable softmax-weighted sum of the upstream's layers (SUPERB) is brought to at most
``max_frame_rate`` frames per second by stacking consecutive frames (the low-frame-rate
trick of Pundak & Sainath 2016; 10 ms filterbanks become 40 ms frames, which keeps the
BiLSTM affordable on a CPU and still leaves more frames than characters), then feeds a
small BiLSTM with a linear output over characters and a blank
(:class:`~speechssl.downstream.heads.CTCHead`),
trained with CTC (Graves et al. 2006, "Connectionist Temporal Classification") and AdamW,
with early stopping on the validation character error rate (the early-stopping loop of
the utterance heads, :func:`~speechssl.downstream.training.train_with_early_stopping`). Decoding is greedy: the best
symbol per frame, repeats merged, blanks removed. WER and CER are corpus-level (jiwer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.featurizer import WeightedLayerSum
from speechssl.downstream.heads import CTCHead
from speechssl.downstream.metrics import character_error_rate, word_error_rate
from speechssl.downstream.training import (
    FrameInputs,
    check_stopping_settings,
    frame_statistics,
    train_with_early_stopping,
)

BLANK = "<blank>"


@dataclass
class CTCTrainingConfig:
    """CTC head training.

    Attributes:
        hidden: BiLSTM hidden size per direction.
        num_layers: BiLSTM layers.
        dropout: dropout between BiLSTM layers.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay of the weight matrices (biases and
            the layer logits are not decayed).
        batch_size: utterances per update.
        max_epochs: passes over ``train`` at most.
        patience: epochs without a lower validation CER before stopping.
        max_grad_norm: gradients are clipped to this global L2 norm (BiLSTMs' exploding
            gradients); ``None`` does not clip.
        max_frame_rate: frames per second the BiLSTM reads at most; faster features are
            stacked ``ceil(rate / max_frame_rate)`` frames at a time.
    """

    hidden: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    lr: float = 2e-3
    weight_decay: float = 1e-2
    batch_size: int = 16
    max_epochs: int = 40
    patience: int = 5
    max_grad_norm: float | None = 5.0
    max_frame_rate: float = 25.0

    def __post_init__(self) -> None:
        for name in ("hidden", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {getattr(self, name)}")
        check_stopping_settings(self)
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, found {self.lr}")
        if not self.max_frame_rate > 0:
            raise ValueError(f"max_frame_rate: expected > 0 frames per second, found {self.max_frame_rate}")

    def stacking(self, downsample_rate: int, sample_rate: int = 16_000) -> int:
        """Consecutive frames stacked into one for features of ``downsample_rate`` samples per frame."""
        return max(1, math.ceil(sample_rate / downsample_rate / self.max_frame_rate - 1e-9))


@dataclass
class ASRResult:
    """Test WER and CER of the epoch with the lowest validation CER."""

    wer: float
    cer: float
    valid_cer: float
    best_epoch: int
    epochs_run: int
    layer_weights: list[float]
    examples: list[tuple[str, str]]


def character_vocabulary(texts: Sequence[str]) -> list[str]:
    """The blank, then every character of ``texts`` in sorted order."""
    return [BLANK, *sorted({char for text in texts for char in text})]


def greedy_decode(log_probs: torch.Tensor, lengths: torch.Tensor, vocabulary: Sequence[str]) -> list[str]:
    """Best path of ``log_probs`` ``(frames, batch, vocab)``: argmax, merge repeats, drop blanks."""
    best = log_probs.argmax(dim=-1).T  # (frames, batch) -> (batch, frames)
    texts = []
    for row, length in zip(best.tolist(), lengths.tolist(), strict=True):
        symbols, previous = [], None
        for index in row[:length]:
            if index != previous and index != 0:
                symbols.append(vocabulary[index])
            previous = index
        texts.append("".join(symbols))
    return texts


def stack_frames(x: torch.Tensor, lengths: torch.Tensor, factor: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every ``factor`` consecutive frames of ``x`` ``(batch, frames, dim)``.

    Returns ``(batch, ceil(frames / factor), factor * dim)`` and the stacked lengths
    ``ceil(lengths / factor)``; the last stacked frame of an utterance is zero-padded.
    """
    if factor == 1:
        return x, lengths
    batch, frames, dim = x.shape
    padded = nn.functional.pad(x, (0, 0, 0, -frames % factor))  # (batch, factor * ceil(frames / factor), dim)
    stacked = padded.reshape(batch, -1, factor * dim)  # (batch, ceil(frames / factor), factor * dim)
    return stacked, torch.div(lengths + factor - 1, factor, rounding_mode="floor")


class _CTCModel(nn.Module):
    def __init__(self, num_layers: int, dim: int, vocab: int, stack: int, config: CTCTrainingConfig) -> None:
        super().__init__()
        self.featurizer = WeightedLayerSum(num_layers)
        self.stack = stack
        self.head = CTCHead(
            stack * dim, vocab, hidden=config.hidden, num_layers=config.num_layers, dropout=config.dropout
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, frames, layers, dim)`` → log-probs ``(frames', batch, vocab)`` and lengths."""
        mixed = self.featurizer(x)  # (batch, frames, dim)
        mixed = mixed.masked_fill(lengths_to_padding_mask(lengths, x.shape[1])[:, :, None], 0.0)
        return self.head(*stack_frames(mixed, lengths, self.stack))


def train_ctc(
    frames: FrameFeatures,
    rows: Mapping[str, Sequence[int]],
    texts: Sequence[str],
    config: CTCTrainingConfig,
    seed: int,
) -> ASRResult:
    """Train a CTC head on ``frames`` rows of ``rows["train"]``, stop on ``valid`` CER, score ``test``.

    Frames are standardised with the mean and standard deviation of ``train``
    (:func:`~speechssl.downstream.training.frame_statistics`) and read batch by batch from
    the memory-mapped cache (:class:`~speechssl.downstream.training.FrameInputs`); the head
    is trained by :func:`~speechssl.downstream.training.train_with_early_stopping` with the
    criterion the lowest validation CER.

    Args:
        frames: cached ``(frames, layers, dim)`` features of every utterance.
        rows: ``{"train", "valid", "test"}`` -> utterance indices into ``frames``.
        texts: the transcript of every utterance (same indexing).
        config: head and training settings.
        seed: seed of initialisation, dropout and batch order.
    """
    vocabulary = character_vocabulary([texts[i] for i in rows["train"]])
    index = {char: i for i, char in enumerate(vocabulary)}
    unknown = sorted({c for split in ("valid", "test") for i in rows[split] for c in texts[i]} - index.keys())
    if unknown:
        raise ValueError(f"transcripts: characters {unknown} occur in valid/test but never in train")
    mean, std = frame_statistics(frames, rows["train"])  # each (layers, dim)
    inputs = {split: FrameInputs(frames, rows[split], mean, std) for split in ("train", "valid", "test")}
    targets = [torch.tensor([index[c] for c in texts[i]]) for i in rows["train"]]
    loss_fn = nn.CTCLoss(blank=0, zero_infinity=True)

    def batch_loss(model: _CTCModel, positions: torch.Tensor) -> torch.Tensor:
        log_probs, out_lengths = model(*inputs["train"].batch(positions))
        labels = [targets[i] for i in positions.tolist()]
        return loss_fn(log_probs, torch.cat(labels), out_lengths, torch.tensor([len(t) for t in labels]))

    def validate(model: _CTCModel) -> float:
        return character_error_rate(
            [texts[i] for i in rows["valid"]], _decode(model, inputs["valid"], vocabulary)
        )

    stack = config.stacking(frames.downsample_rate)
    run = train_with_early_stopping(
        lambda: _CTCModel(frames.frames.shape[1], frames.frames.shape[2], len(vocabulary), stack, config),
        batch_loss,
        len(targets),
        validate,
        lambda cer: -cer,
        config,
        config.lr,
        seed,
    )
    hypotheses = _decode(run.model, inputs["test"], vocabulary)
    references = [texts[i] for i in rows["test"]]
    return ASRResult(
        wer=word_error_rate(references, hypotheses),
        cer=character_error_rate(references, hypotheses),
        valid_cer=run.scores[run.best_epoch - 1],
        best_epoch=run.best_epoch,
        epochs_run=run.epochs_run,
        layer_weights=run.model.featurizer.layer_weights(),
        examples=list(zip(references[:3], hypotheses[:3], strict=True)),
    )


@torch.no_grad()
def _decode(model: _CTCModel, inputs: FrameInputs, vocabulary: Sequence[str], batch: int = 32) -> list[str]:
    """Greedy transcripts of every utterance of ``inputs``, in order."""
    model.eval()
    texts = []
    for positions in torch.arange(len(inputs)).split(batch):
        log_probs, out_lengths = model(*inputs.batch(positions))
        texts += greedy_decode(log_probs, out_lengths, vocabulary)
    return texts
