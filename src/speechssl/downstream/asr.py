"""Character CTC speech recognition on frozen frame features (SUPERB's ASR task, small).

A learnable softmax-weighted sum of the upstream's layers (SUPERB) is brought to at most
``max_frame_rate`` frames per second by stacking consecutive frames (the low-frame-rate
trick of Pundak & Sainath 2016; 10 ms filterbanks become 40 ms frames, which keeps the
BiLSTM affordable on a CPU and still leaves more frames than characters), then feeds a
small BiLSTM with a linear output over characters and a blank
(:class:`~speechssl.downstream.heads.CTCHead`),
trained with CTC (Graves et al. 2006, "Connectionist Temporal Classification") and AdamW,
with early stopping on the validation character error rate. Decoding is greedy: the best
symbol per frame, repeats merged, blanks removed. WER and CER are corpus-level (jiwer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from speechssl.data.batch import lengths_to_padding_mask
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.featurizer import WeightedLayerSum
from speechssl.downstream.heads import CTCHead
from speechssl.downstream.metrics import character_error_rate, word_error_rate

BLANK = "<blank>"


@dataclass
class CTCTrainingConfig:
    """CTC head training.

    Attributes:
        hidden: BiLSTM hidden size per direction.
        num_layers: BiLSTM layers.
        dropout: dropout between BiLSTM layers.
        lr: AdamW learning rate.
        batch_size: utterances per update.
        max_epochs: passes over ``train`` at most.
        patience: epochs without a lower validation CER before stopping.
        max_frame_rate: frames per second the BiLSTM reads at most; faster features are
            stacked ``ceil(rate / max_frame_rate)`` frames at a time.
    """

    hidden: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    lr: float = 2e-3
    batch_size: int = 16
    max_epochs: int = 40
    patience: int = 5
    max_frame_rate: float = 25.0

    def __post_init__(self) -> None:
        for name in ("hidden", "num_layers", "batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {getattr(self, name)}")
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


def _pad(utterances: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([len(u) for u in utterances])
    return nn.utils.rnn.pad_sequence(utterances, batch_first=True), lengths  # (batch, frames, layers, dim)


def train_ctc(
    frames: FrameFeatures,
    rows: Mapping[str, Sequence[int]],
    texts: Sequence[str],
    config: CTCTrainingConfig,
    seed: int,
) -> ASRResult:
    """Train a CTC head on ``frames`` rows of ``rows["train"]``, stop on ``valid`` CER, score ``test``.

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
    data = {
        split: [torch.from_numpy(np.asarray(frames.utterance(i), dtype=np.float32)) for i in indices]
        for split, indices in rows.items()
    }  # each (frames, layers, dim)
    stacked = torch.cat(data["train"])  # (train frames, layers, dim)
    mean, std = stacked.mean(dim=0), stacked.std(dim=0).clamp_min(1e-5)  # (layers, dim)
    data = {split: [(u - mean) / std for u in utterances] for split, utterances in data.items()}
    targets = [torch.tensor([index[c] for c in texts[i]]) for i in rows["train"]]

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        stack = config.stacking(frames.downsample_rate)
        model = _CTCModel(frames.frames.shape[1], frames.frames.shape[2], len(vocabulary), stack, config)
        optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr)
        loss_fn = nn.CTCLoss(blank=0, zero_infinity=True)
        best = (float("inf"), 0, None)
        epoch = 0
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            for batch in torch.randperm(len(targets)).split(config.batch_size):
                x, lengths = _pad([data["train"][i] for i in batch])
                log_probs, out_lengths = model(x, lengths)
                labels = [targets[i] for i in batch]
                loss = loss_fn(
                    log_probs, torch.cat(labels), out_lengths, torch.tensor([len(t) for t in labels])
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                optimizer.step()
            valid_cer = character_error_rate(
                [texts[i] for i in rows["valid"]], _decode(model, data["valid"], vocabulary)
            )
            if valid_cer < best[0]:
                best = (valid_cer, epoch, {k: v.clone() for k, v in model.state_dict().items()})
            elif epoch - best[1] >= config.patience:
                break
        valid_cer, best_epoch, state = best
        model.load_state_dict(state)
        hypotheses = _decode(model, data["test"], vocabulary)
    references = [texts[i] for i in rows["test"]]
    return ASRResult(
        wer=word_error_rate(references, hypotheses),
        cer=character_error_rate(references, hypotheses),
        valid_cer=valid_cer,
        best_epoch=best_epoch,
        epochs_run=epoch,
        layer_weights=model.featurizer.layer_weights(),
        examples=list(zip(references[:3], hypotheses[:3], strict=True)),
    )


@torch.no_grad()
def _decode(
    model: _CTCModel, utterances: list[torch.Tensor], vocabulary: Sequence[str], batch: int = 32
) -> list[str]:
    model.eval()
    texts = []
    for start in range(0, len(utterances), batch):
        x, lengths = _pad(utterances[start : start + batch])
        log_probs, out_lengths = model(x, lengths)
        texts += greedy_decode(log_probs, out_lengths, vocabulary)
    return texts
