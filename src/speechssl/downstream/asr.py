"""CTC recognition of characters or phones on frozen frame features (SUPERB's ASR and PR).

A learnable softmax-weighted sum of the upstream's layers (SUPERB) is brought to at most
``max_frame_rate`` frames per second by stacking consecutive frames (the low-frame-rate
trick of Pundak & Sainath 2016; 10 ms filterbanks become 40 ms frames, which keeps the
BiLSTM affordable on a CPU and still leaves more frames than characters), optionally
projected (s3prl's ``project_dim``) and warped and masked with SpecAugment while training, then feeds
a BiLSTM with a linear output (:class:`~speechssl.downstream.heads.CTCHead`) or a linear
layer alone over the units and a blank, trained with CTC (Graves et al. 2006,
"Connectionist Temporal Classification") and AdamW, keeping the model that scores best on
``valid`` (the early-stopping loop of the utterance heads,
:func:`~speechssl.downstream.training.train_with_early_stopping`). Decoding is greedy: the
best symbol per frame, repeats merged, blanks removed. WER, CER and PER are corpus-level
(jiwer).

:data:`SUPERB_ASR` and :data:`SUPERB_PR` are the head settings of SUPERB's ASR and PR
tasks (Yang et al. 2021, "SUPERB: Speech processing Universal PERformance Benchmark"),
read from s3prl v0.4's ``downstream/asr/config.yaml`` and ``downstream/ctc/libriphone.yaml``;
the defaults of :class:`CTCTrainingConfig` are the small CPU head of the mini ASR task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import nn

from speechssl.augment.spectral import FrequencyMask, TimeMask, TimeWarp
from speechssl.data.batch import lengths_to_padding_mask
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.featurizer import WeightedLayerSum
from speechssl.downstream.heads import CTCHead
from speechssl.downstream.lm_decoding import LexiconBeamSearch, LMDecodingConfig
from speechssl.downstream.metrics import character_error_rate, phone_error_rate, word_error_rate
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
        head: ``bilstm`` (:class:`~speechssl.downstream.heads.CTCHead`) or ``linear`` (a
            linear layer over the units, SUPERB PR's ``FrameLevel`` head).
        hidden: BiLSTM hidden size per direction.
        num_layers: BiLSTM layers.
        dropout: dropout between BiLSTM layers and before the output layer.
        projection: width of a linear projection of the (stacked) features before the
            head (s3prl's ``project_dim``); ``None``: no projection.
        lr: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay of the weight matrices (biases and
            the layer logits are not decayed); 0 is Adam.
        batch_size: utterances per update.
        max_epochs: passes over ``train`` at most (rounds of ``eval_steps`` updates when set).
        patience: validations without a better score before stopping.
        max_grad_norm: gradients are clipped to this global L2 norm (BiLSTMs' exploding
            gradients); ``None`` does not clip.
        max_frame_rate: frames per second the head reads at most; faster features are
            stacked ``ceil(rate / max_frame_rate)`` frames at a time; ``None``: never stacked.
        standardize: standardise every layer's features with the mean and standard
            deviation of ``train`` (SUPERB feeds the upstream's features as they are).
        spec_augment: warp and mask the weighted sum of layers while training with
            SpecAugment (Park et al. 2019) as s3prl's ASR config does (:data:`SPEC_AUGMENT`:
            time warping, 4 frequency bands and 2 time masks, zero-filled).
        time_warp: with ``spec_augment``, warp time first (:data:`TIME_WARP`, s3prl's
            ``apply_time_warp: true``, window 5); ``false``: the masks alone.
        select_on: validation error rate that picks the model of a character task,
            ``cer`` or ``wer`` (SUPERB ASR: dev-clean WER); phone tasks select on PER.
        eval_steps: updates between validations (s3prl's ``eval_step``); ``None``: one epoch.
            s3prl's ``total_steps`` is ``max_epochs`` rounds of ``eval_steps`` updates.
        lm: n-gram beam search of the selected model's ``test`` outputs, reported as
            ``wer_lm`` beside the greedy WER (characters only; off by default).
    """

    head: Literal["bilstm", "linear"] = "bilstm"
    hidden: int = 128
    num_layers: int = 2
    dropout: float = 0.1
    projection: int | None = None
    lr: float = 2e-3
    weight_decay: float = 1e-2
    batch_size: int = 16
    max_epochs: int = 40
    patience: int = 5
    max_grad_norm: float | None = 5.0
    max_frame_rate: float | None = 25.0
    standardize: bool = True
    spec_augment: bool = False
    time_warp: bool = True
    select_on: Literal["cer", "wer"] = "cer"
    eval_steps: int | None = None
    lm: LMDecodingConfig = field(default_factory=LMDecodingConfig)

    def __post_init__(self) -> None:
        if self.head not in ("bilstm", "linear"):
            raise ValueError(f"head: expected 'bilstm' or 'linear', found {self.head!r}")
        if self.select_on not in ("cer", "wer"):
            raise ValueError(f"select_on: expected 'cer' or 'wer', found {self.select_on!r}")
        for name in ("hidden", "num_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {getattr(self, name)}")
        for name in ("projection", "eval_steps"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1 or null, found {getattr(self, name)}")
        check_stopping_settings(self)
        if not self.lr > 0:
            raise ValueError(f"lr: expected > 0, found {self.lr}")
        if self.max_frame_rate is not None and not self.max_frame_rate > 0:
            raise ValueError(
                f"max_frame_rate: expected > 0 frames per second or null, found {self.max_frame_rate}"
            )

    def stacking(self, downsample_rate: int, sample_rate: int = 16_000) -> int:
        """Consecutive frames stacked into one for features of ``downsample_rate`` samples per frame."""
        if self.max_frame_rate is None:
            return 1
        return max(1, math.ceil(sample_rate / downsample_rate / self.max_frame_rate - 1e-9))


SUPERB_ASR = CTCTrainingConfig(
    head="bilstm", hidden=1024, num_layers=2, dropout=0.2, projection=1024, lr=1e-4, weight_decay=0.0,
    batch_size=32, max_epochs=100, patience=100, max_grad_norm=1.0, max_frame_rate=None,
    standardize=False, spec_augment=True, select_on="wer", eval_steps=2_000,
)  # fmt: skip
"""SUPERB ASR (s3prl v0.4 ``downstream/asr/config.yaml``): the weighted sum projected to 1024,
2 BiLSTM layers of 1024 units per direction with dropout 0.2, no downsampling, Adam at
1e-4, batches of 32, gradients clipped to 1, SpecAugment with time warping on the features
(:data:`SPEC_AUGMENT`), 200k updates with
dev-clean WER every 2k: 100 rounds of 2k updates, all of them run (no early stopping)."""

SUPERB_PR = CTCTrainingConfig(
    head="linear", projection=256, dropout=0.0, lr=1e-2, weight_decay=0.0, batch_size=32,
    max_epochs=100, patience=100, max_grad_norm=1.0, max_frame_rate=None, standardize=False,
    eval_steps=1_000,
)  # fmt: skip
"""SUPERB PR (s3prl v0.4 ``downstream/ctc/libriphone.yaml``): the weighted sum projected to
256, then a linear layer over the phones (``FrameLevel``), Adam at 1e-2, batches of 16 with
2 accumulated (32 per update), gradients clipped to 1, 100k updates with dev PER every 1k
(100 rounds of 1k updates)."""


@dataclass
class ASRResult:
    """Test error rates of the model with the lowest validation error.

    Attributes:
        error_rates: ``{"wer", "cer"}`` (characters; ``wer_lm`` too with ``config.lm``) or
            ``{"per"}`` (phones) on ``test``.
        valid_error: the validation error rate that selected the model.
        best_epoch: 1-based validation round of the kept model.
        epochs_run: validation rounds run.
        layer_weights: the featurizer's softmax layer weights.
        examples: (reference, hypothesis) of the first 3 test utterances.
    """

    error_rates: dict[str, float]
    valid_error: float
    best_epoch: int
    epochs_run: int
    layer_weights: list[float]
    examples: list[tuple[str, str]]


Unit = Literal["character", "phone"]


def tokenize(text: str, unit: Unit) -> list[str]:
    """The CTC targets of ``text``: its characters, or its space-separated phones."""
    return list(text) if unit == "character" else text.split()


def character_vocabulary(texts: Sequence[str], unit: Unit = "character") -> list[str]:
    """The blank, then every unit (character or phone) of ``texts`` in sorted order."""
    return [BLANK, *sorted({token for text in texts for token in tokenize(text, unit)})]


def greedy_decode(
    log_probs: torch.Tensor, lengths: torch.Tensor, vocabulary: Sequence[str], separator: str = ""
) -> list[str]:
    """Best path of ``log_probs`` ``(frames, batch, vocab)``: argmax, merge repeats, drop blanks;
    the symbols of each utterance joined by ``separator``."""
    best = log_probs.argmax(dim=-1).T  # (frames, batch) -> (batch, frames)
    texts = []
    for row, length in zip(best.tolist(), lengths.tolist(), strict=True):
        symbols, previous = [], None
        for index in row[:length]:
            if index != previous and index != 0:
                symbols.append(vocabulary[index])
            previous = index
        texts.append(separator.join(symbols))
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


class LinearCTCHead(nn.Module):
    """A linear layer giving per-frame log-probabilities for CTC (SUPERB PR's head).

    Args:
        in_dim: frame feature dimension.
        vocab_size: output symbols, the blank included.
    """

    def __init__(self, in_dim: int, vocab_size: int) -> None:
        super().__init__()
        self.output = nn.Linear(in_dim, vocab_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (batch, frames, in_dim)`` → log-probs ``(frames, batch, vocab)`` and ``lengths``."""
        log_probs = torch.log_softmax(self.output(x), dim=-1)  # (batch, frames, vocab)
        return log_probs.transpose(0, 1), lengths  # (batch, frames, vocab) -> (frames, batch, vocab)


TIME_WARP = TimeWarp(window=5)
"""s3prl's ASR time warping (``apply_time_warp: true``, ``time_warp_window: 5``, bicubic)."""

SPEC_AUGMENT = (
    TIME_WARP,
    FrequencyMask(max_width=49, num_masks=4, fill="zero"),
    TimeMask(max_width=39, num_masks=2, fill="zero"),
)
"""s3prl v0.4's ASR SpecAugment on the features (``downstream/asr/config.yaml`` and
``downstream/specaug.py``), in its order: time warping, then ``num_freq_mask: 4`` bands and
``num_time_mask: 2`` spans whose widths s3prl draws with ``randint`` over
``freq_mask_width_range [0, 50]`` and ``time_mask_width_range [0, 40]`` (upper bound
excluded: 0..49 and 0..39), replaced with zero (``replace_with_zero``). Masks lie within each
utterance's valid frames (s3prl places time masks over the padded batch)."""


class _CTCModel(nn.Module):
    def __init__(self, num_layers: int, dim: int, vocab: int, stack: int, config: CTCTrainingConfig) -> None:
        super().__init__()
        self.featurizer = WeightedLayerSum(num_layers)
        self.stack = stack
        transforms = (
            SPEC_AUGMENT if config.time_warp else tuple(t for t in SPEC_AUGMENT if t is not TIME_WARP)
        )
        self.spec_augment = transforms if config.spec_augment else ()
        width = stack * dim
        self.projection = nn.Identity() if config.projection is None else nn.Linear(width, config.projection)
        width = config.projection or width
        self.head = (
            CTCHead(width, vocab, hidden=config.hidden, num_layers=config.num_layers, dropout=config.dropout)
            if config.head == "bilstm"
            else LinearCTCHead(width, vocab)
        )

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(batch, frames, layers, dim)`` → log-probs ``(frames', batch, vocab)`` and lengths."""
        mixed = self.featurizer(x)  # (batch, frames, dim)
        mixed = mixed.masked_fill(lengths_to_padding_mask(lengths, x.shape[1])[:, :, None], 0.0)
        if self.training:
            for transform in self.spec_augment:
                mixed, lengths = transform(mixed, lengths)
        stacked, lengths = stack_frames(mixed, lengths, self.stack)  # (batch, frames', stack * dim)
        return self.head(self.projection(stacked), lengths)


def _error_rates(references: Sequence[str], hypotheses: Sequence[str], unit: Unit) -> dict[str, float]:
    if unit == "phone":
        return {"per": phone_error_rate(references, hypotheses)}
    return {
        "wer": word_error_rate(references, hypotheses),
        "cer": character_error_rate(references, hypotheses),
    }


def train_ctc(
    frames: FrameFeatures,
    rows: Mapping[str, Sequence[int]],
    texts: Sequence[str],
    config: CTCTrainingConfig,
    seed: int,
    unit: Unit = "character",
) -> ASRResult:
    """Train a CTC head on ``frames`` rows of ``rows["train"]``, select on ``valid``, score ``test``.

    Frames are standardised with the mean and standard deviation of ``train``
    (:func:`~speechssl.downstream.training.frame_statistics`) when ``config.standardize``
    and read batch by batch from the memory-mapped cache
    (:class:`~speechssl.downstream.training.FrameInputs`); the head is trained by
    :func:`~speechssl.downstream.training.train_with_early_stopping` with the criterion the
    lowest validation error rate (``config.select_on`` for characters, PER for phones),
    validated every epoch or every ``config.eval_steps`` updates.

    Args:
        frames: cached ``(frames, layers, dim)`` features of every utterance.
        rows: ``{"train", "valid", "test"}`` -> utterance indices into ``frames``.
        texts: the transcript of every utterance (same indexing): characters, or
            space-separated phones for ``unit="phone"``.
        config: head and training settings.
        seed: seed of initialisation, dropout, SpecAugment and batch order.
        unit: what the head emits, ``character`` or ``phone``.
    """
    if unit == "phone" and config.lm.kenlm_model is not None:
        raise ValueError("asr.lm: LM decoding applies to character units, not phones")
    vocabulary = character_vocabulary([texts[i] for i in rows["train"]], unit)
    index = {token: i for i, token in enumerate(vocabulary)}
    unknown = sorted(
        {t for split in ("valid", "test") for i in rows[split] for t in tokenize(texts[i], unit)}
        - index.keys()
    )
    if unknown:
        raise ValueError(f"transcripts: {unit}s {unknown} occur in valid/test but never in train")
    layers, dim = frames.frames.shape[1:]
    mean, std = (
        frame_statistics(frames, rows["train"])
        if config.standardize
        else (torch.zeros(layers, dim), torch.ones(layers, dim))
    )  # each (layers, dim)
    inputs = {split: FrameInputs(frames, rows[split], mean, std) for split in ("train", "valid", "test")}
    targets = [torch.tensor([index[t] for t in tokenize(texts[i], unit)]) for i in rows["train"]]
    loss_fn = nn.CTCLoss(blank=0, zero_infinity=True)
    separator = " " if unit == "phone" else ""

    def greedy(log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        return greedy_decode(log_probs, lengths, vocabulary, separator)

    selection = "per" if unit == "phone" else config.select_on

    def batch_loss(model: _CTCModel, positions: torch.Tensor) -> torch.Tensor:
        log_probs, out_lengths = model(*inputs["train"].batch(positions))
        labels = [targets[i] for i in positions.tolist()]
        return loss_fn(log_probs, torch.cat(labels), out_lengths, torch.tensor([len(t) for t in labels]))

    def validate(model: _CTCModel) -> float:
        hypotheses = _decode(model, inputs["valid"], greedy)
        return _error_rates([texts[i] for i in rows["valid"]], hypotheses, unit)[selection]

    stack = config.stacking(frames.downsample_rate)
    run = train_with_early_stopping(
        lambda: _CTCModel(layers, dim, len(vocabulary), stack, config),
        batch_loss,
        len(targets),
        validate,
        lambda error: -error,
        config,
        config.lr,
        seed,
        eval_steps=config.eval_steps,
    )
    hypotheses = _decode(run.model, inputs["test"], greedy)
    references = [texts[i] for i in rows["test"]]
    error_rates = _error_rates(references, hypotheses, unit)
    if config.lm.kenlm_model is not None:
        search = LexiconBeamSearch(config.lm, vocabulary)
        error_rates["wer_lm"] = word_error_rate(references, _decode(run.model, inputs["test"], search.decode))
    return ASRResult(
        error_rates=error_rates,
        valid_error=run.scores[run.best_epoch - 1],
        best_epoch=run.best_epoch,
        epochs_run=run.epochs_run,
        layer_weights=run.model.featurizer.layer_weights(),
        examples=list(zip(references[:3], hypotheses[:3], strict=True)),
    )


@torch.no_grad()
def _decode(
    model: _CTCModel,
    inputs: FrameInputs,
    search: Callable[[torch.Tensor, torch.Tensor], list[str]],
    batch: int = 32,
) -> list[str]:
    """Transcripts of every utterance of ``inputs``, in order, by ``search(log_probs, lengths)``."""
    model.eval()
    texts = []
    for positions in torch.arange(len(inputs)).split(batch):
        texts += search(*model(*inputs.batch(positions)))
    return texts
