"""Training utterance classifiers on frozen upstream features.

The SUPERB protocol (Yang et al. 2021, §3) with the upstream frozen: a featurizer (a
learnable softmax-weighted sum of layers, or one fixed layer) and a small head are trained
with AdamW (Loshchilov & Hutter 2019) on ``train``; the epoch with the best ``valid``
accuracy (ties broken by cross-entropy) is kept (early stopping, Prechelt 1998), the
learning rate is optionally chosen the same way, and ``test`` is scored once, by the
chosen model only.

Two inputs, one procedure:

- ``pooling="mean"``: the head reads each layer's masked mean over frames
  (:func:`train_utterance_classifier`, from the cache's pooled statistics). The weighted
  sum and the mean commute, so this is exactly mean pooling of the featurizer's frames, and
  it is fast: everything stays in memory, one run on a few thousand utterances takes well
  under a second on a CPU.
- ``pooling="attentive"``: the head reads the frames and pools them itself with attentive
  statistics pooling (Okabe et al. 2018; :func:`train_frame_classifier`, from the cache's
  frames), so it can weigh the frames where a keyword is spoken.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechssl.augment.base import crop_offsets
from speechssl.data import SPLITS
from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.featurizer import FixedLayer, WeightedLayerSum
from speechssl.downstream.heads import (
    AttentiveStatisticsPoolingHead,
    LinearHead,
    MLPHead,
    ProjectedLinearHead,
)
from speechssl.models.pooling import masked_mean
from speechssl.progress import Progress
from speechssl.train.optimizer import parameter_groups

Model = TypeVar("Model", bound=nn.Module)
Score = TypeVar("Score")


class StoppingSettings(Protocol):
    """The options of a head config that :func:`train_with_early_stopping` reads.

    Attributes:
        batch_size: utterances per update.
        max_epochs: passes over ``train`` at most.
        patience: epochs without a better validation score before training stops; ``None``
            runs every epoch (a fixed budget, the best epoch kept).
        weight_decay: AdamW decoupled weight decay of the matrices
            (:func:`~speechssl.train.optimizer.parameter_groups`).
        max_grad_norm: gradients are clipped to this global L2 norm; ``None`` does not clip.
    """

    batch_size: int
    max_epochs: int
    patience: int | None
    weight_decay: float
    max_grad_norm: float | None


def check_stopping_settings(settings: StoppingSettings) -> None:
    """Raise a ``ValueError`` naming the first option of ``settings`` out of its range."""
    for name in ("batch_size", "max_epochs"):
        if getattr(settings, name) < 1:
            raise ValueError(f"{name}: expected an integer >= 1, found {getattr(settings, name)}")
    if settings.patience is not None and settings.patience < 1:
        raise ValueError(f"patience: expected an integer >= 1 or null, found {settings.patience}")
    if not settings.weight_decay >= 0:
        raise ValueError(f"weight_decay: expected a number >= 0, found {settings.weight_decay}")
    if settings.max_grad_norm is not None and not settings.max_grad_norm > 0:
        raise ValueError(f"max_grad_norm: expected a number > 0 or null, found {settings.max_grad_norm}")


def check_crop_seconds(crop_seconds: float | None) -> None:
    """Raise a ``ValueError`` unless ``crop_seconds`` is ``None`` or a finite duration > 0."""
    if crop_seconds is not None and not (crop_seconds > 0 and math.isfinite(crop_seconds)):
        raise ValueError(f"crop_seconds: expected a duration > 0 in seconds or null, found {crop_seconds}")


@dataclass
class EarlyStoppingRun(Generic[Model, Score]):
    """A model trained by :func:`train_with_early_stopping`, restored to its best epoch.

    Attributes:
        model: in eval mode, holding the weights of ``best_epoch``.
        best_epoch: 1-based epoch with the best validation score (the first, on ties).
        scores: the validation score after every epoch run.
    """

    model: Model
    best_epoch: int
    scores: list[Score]

    @property
    def epochs_run(self) -> int:
        """Epochs trained before early stopping (or ``max_epochs``)."""
        return len(self.scores)


def _epoch_batches(
    num_train: int, batch_size: int, order: torch.Generator, sample_weights: torch.Tensor | None
) -> tuple[torch.Tensor, ...]:
    """One epoch's batches of training positions: a permutation, or ``num_train`` weighted draws."""
    if sample_weights is None:
        positions = torch.randperm(num_train, generator=order)
    else:
        positions = torch.multinomial(sample_weights, num_train, replacement=True, generator=order)
    return positions.split(batch_size)


def _batch_stream(
    num_train: int, batch_size: int, order: torch.Generator, sample_weights: torch.Tensor | None
) -> Iterator[torch.Tensor]:
    """Batches of one epoch after another, without end."""
    while True:
        yield from _epoch_batches(num_train, batch_size, order, sample_weights)


def train_with_early_stopping(
    build: Callable[[], Model],
    batch_loss: Callable[[Model, torch.Tensor], torch.Tensor],
    num_train: int,
    validate: Callable[[Model], Score],
    criterion: Callable[[Score], Any],
    settings: StoppingSettings,
    lr: float,
    seed: int,
    sample_weights: torch.Tensor | None = None,
    eval_steps: int | None = None,
) -> EarlyStoppingRun[Model, Score]:
    """Train a head with AdamW on ``train``, keeping the epoch that scores best on ``valid``.

    Early stopping (Prechelt 1998): after every epoch the model is scored on ``valid``; the
    epoch with the largest ``criterion(score)`` is kept (the first, on ties), and training
    stops after ``settings.patience`` epochs without a larger one (never, with ``None``:
    every epoch runs and the best is kept, s3prl's fixed budget). An epoch is ``num_train``
    utterances: a permutation of ``train``, or, with ``sample_weights``, drawn with
    replacement in proportion to them (PyTorch's ``WeightedRandomSampler``, as s3prl
    balances the classes of keyword spotting). With ``eval_steps``, the model is scored after
    every ``eval_steps`` updates instead of after every epoch (s3prl's ``eval_step``; epochs
    run on across the rounds), and ``max_epochs`` and ``patience`` count these rounds. The
    optimizer is AdamW
    (Loshchilov & Hutter 2019) with the weight decay of
    :func:`~speechssl.train.optimizer.parameter_groups`; gradients are clipped to
    ``settings.max_grad_norm`` when set.

    ``seed`` fixes the initialisation (``build`` runs with the global generator seeded),
    dropout and the order of the training utterances (a local :class:`torch.Generator`);
    the global random state is restored afterwards.

    Args:
        build: makes the untrained model.
        batch_loss: the training loss of the model on the training utterances at
            ``positions`` ``(batch,)`` int64 (indices in ``[0, num_train)``).
        num_train: number of training utterances.
        validate: the validation score of the model (run in eval mode, without gradients).
        criterion: orders scores; larger is better.
        settings: batch size, epochs, patience, weight decay and gradient clipping.
        lr: the learning rate.
        seed: seed of initialisation, dropout and data order.
        sample_weights: ``(num_train,)`` non-negative weights of drawing each training
            utterance; ``None`` visits each once per epoch.
        eval_steps: updates between two validations; ``None``: one epoch.
    """
    if eval_steps is not None and eval_steps < 1:
        raise ValueError(f"eval_steps: expected an integer >= 1 or null, found {eval_steps}")
    if sample_weights is not None and sample_weights.shape != (num_train,):
        raise ValueError(
            f"sample_weights: expected shape ({num_train},), found {tuple(sample_weights.shape)}"
        )
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        model = build()
        optimizer = torch.optim.AdamW(parameter_groups(model, settings.weight_decay), lr=lr)
        scores: list[Score] = []
        best_epoch = 0
        best_state: dict[str, torch.Tensor] = {}
        stream = _batch_stream(num_train, settings.batch_size, order, sample_weights)
        unit = "epochs" if eval_steps is None else f"rounds of {eval_steps} updates"
        with Progress(settings.max_epochs, f"head fit (lr {lr:g}, seed {seed})", unit) as progress:
            for epoch in range(1, settings.max_epochs + 1):
                model.train()
                if eval_steps is None:
                    batches = _epoch_batches(num_train, settings.batch_size, order, sample_weights)
                else:
                    batches = itertools.islice(stream, eval_steps)
                for positions in batches:
                    loss = batch_loss(model, positions)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if settings.max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(model.parameters(), settings.max_grad_norm)
                    optimizer.step()
                model.eval()
                with torch.no_grad():
                    scores.append(validate(model))
                progress.update()
                if best_epoch == 0 or criterion(scores[-1]) > criterion(scores[best_epoch - 1]):
                    best_epoch = epoch
                    best_state = copy.deepcopy(model.state_dict())
                elif settings.patience is not None and epoch - best_epoch >= settings.patience:
                    break
    model.load_state_dict(best_state)
    model.eval()
    return EarlyStoppingRun(model=model, best_epoch=best_epoch, scores=scores)


@dataclass
class HeadTrainingConfig:
    """How a head is trained on frozen features.

    Attributes:
        head: ``linear`` (:class:`~speechssl.downstream.heads.LinearHead`), ``mlp``
            (:class:`~speechssl.downstream.heads.MLPHead`) or ``projected_linear``
            (:class:`~speechssl.downstream.heads.ProjectedLinearHead`, SUPERB's).
        hidden: hidden width of the ``mlp`` head, projector width of ``projected_linear``.
        dropout: input dropout of the ``mlp`` head.
        lr: AdamW learning rate (ignored when ``lr_sweep`` is given).
        lr_sweep: learning rates to try, each with the same seed; the one with the best
            validation criterion (see ``patience``) wins.
        weight_decay: decoupled weight decay of weight matrices; biases and the layer
            logits are never decayed (decay would pull the layer weights towards uniform).
        batch_size: utterances per update.
        max_epochs: passes over ``train`` at most.
        patience: epochs without a better validation criterion (higher accuracy, or equal
            accuracy and lower cross-entropy) before training stops.
        max_grad_norm: gradients are clipped to this global L2 norm; ``None`` does not clip.
        layer: ``weighted`` (SUPERB's learnable weighted sum of all layers) or the index
            of one layer (negative counts from the last).
        pooling: ``mean`` (the head reads pooled means) or ``attentive`` (the head reads
            frames through attentive statistics pooling; needs ``head="mlp"``).
        attention_dim: width of the attentive pooling's scoring layer.
        balanced: draw each epoch's training utterances with replacement, every class
            equally likely (s3prl's class-balanced sampling of keyword spotting).
        eval_steps: validate after every this many updates (s3prl's ``eval_step``) instead of
            after every epoch; ``max_epochs`` and ``patience`` then count these rounds.
        slot_separator: labels are slot values joined by this string (``|`` in
            ``activate|lights|kitchen``): the head gives one softmax per slot over the slot's
            ``train`` values, the loss is the sum of the slots' cross-entropies and a
            prediction is right when every slot is (s3prl's intent classification on Fluent
            Speech Commands); ``None``: each label is one class.
        crop_seconds: train on a random window of this many seconds of each longer
            utterance's frames, drawn anew every time the utterance is batched (s3prl's
            ``max_timestep`` of speaker identification); ``valid`` and ``test`` read whole
            utterances. Needs frames: the task reads them instead of pooled means (see
            :class:`FrameInputs`). ``None``: whole utterances.
    """

    head: Literal["linear", "mlp", "projected_linear"] = "linear"
    hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-2
    lr_sweep: list[float] | None = None
    weight_decay: float = 1e-2
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    max_grad_norm: float | None = None
    layer: Literal["weighted"] | int = "weighted"
    pooling: Literal["mean", "attentive"] = "mean"
    attention_dim: int = 128
    balanced: bool = False
    eval_steps: int | None = None
    slot_separator: str | None = None
    crop_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.head not in ("linear", "mlp", "projected_linear"):
            raise ValueError(f"head: expected 'linear', 'mlp' or 'projected_linear', found {self.head!r}")
        if self.pooling not in ("mean", "attentive"):
            raise ValueError(f"pooling: expected 'mean' or 'attentive', found {self.pooling!r}")
        if self.pooling == "attentive" and self.head != "mlp":
            raise ValueError(
                "head: pooling='attentive' classifies [mean, std] with an MLP, expected head='mlp', "
                f"found {self.head!r}"
            )
        if self.hidden < 1:
            raise ValueError(f"hidden: expected an integer >= 1, found {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {self.dropout}")
        for name, value in [("lr", self.lr), *(("lr_sweep", lr) for lr in self.lr_sweep or ())]:
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}: expected finite learning rates > 0, found {value}")
        if self.lr_sweep is not None and len(self.lr_sweep) == 0:
            raise ValueError("lr_sweep: expected a non-empty list of learning rates or null, found []")
        check_stopping_settings(self)
        if self.eval_steps is not None and self.eval_steps < 1:
            raise ValueError(f"eval_steps: expected an integer >= 1 or null, found {self.eval_steps}")
        if self.slot_separator == "":
            raise ValueError("slot_separator: expected a non-empty string or null, found ''")
        if self.balanced and self.slot_separator is not None:
            raise ValueError(
                "balanced: class-balanced sampling draws by one class per utterance, expected "
                f"slot_separator=null, found {self.slot_separator!r}"
            )
        if self.attention_dim < 1:
            raise ValueError(f"attention_dim: expected an integer >= 1, found {self.attention_dim}")
        check_crop_seconds(self.crop_seconds)
        if self.layer != "weighted" and (isinstance(self.layer, bool) or not isinstance(self.layer, int)):
            raise ValueError(f"layer: expected 'weighted' or a layer index, found {self.layer!r}")

    def learning_rates(self) -> list[float]:
        """The learning rates to train with: ``lr_sweep``, or ``[lr]`` without a sweep."""
        return list(self.lr_sweep) if self.lr_sweep is not None else [self.lr]


@dataclass
class HeadFit:
    """One trained head, restored to its best validation epoch.

    The validation criterion is the accuracy, ties broken by the lower cross-entropy: once
    accuracy saturates (e.g. 100% on an easy task) training goes on while the model
    still grows more confident on ``valid``, instead of stopping at the first perfect epoch.

    Attributes:
        model: the :class:`UtteranceClassifier`, in eval mode, holding the weights of
            ``best_epoch``.
        best_epoch: 1-based epoch with the best validation criterion (the first, on ties).
        valid_accuracies: validation accuracy after every epoch run.
        valid_losses: validation cross-entropy after every epoch run.
    """

    model: UtteranceClassifier
    best_epoch: int
    valid_accuracies: list[float]
    valid_losses: list[float]

    @property
    def valid_accuracy(self) -> float:
        """Validation accuracy at ``best_epoch``."""
        return self.valid_accuracies[self.best_epoch - 1]

    @property
    def valid_loss(self) -> float:
        """Validation cross-entropy at ``best_epoch``."""
        return self.valid_losses[self.best_epoch - 1]

    @property
    def epochs_run(self) -> int:
        """Epochs trained before early stopping (or ``max_epochs``)."""
        return len(self.valid_accuracies)

    def criterion(self) -> tuple[float, float]:
        """The validation criterion at ``best_epoch``; larger is better."""
        return _criterion(self.valid_accuracy, self.valid_loss)


def _criterion(accuracy: float, loss: float) -> tuple[float, float]:
    """Validation criterion compared lexicographically: accuracy, then lower cross-entropy."""
    return accuracy, -loss


@dataclass
class ClassifierResult:
    """An utterance classifier trained on frozen features and scored on ``test``.

    Attributes:
        test_accuracy: accuracy of the chosen model on ``test``.
        valid_accuracy: its accuracy on ``valid`` (the selection criterion).
        best_epoch: 1-based epoch whose weights were kept.
        lr: learning rate of the chosen model.
        layer_weights: the featurizer's softmax layer weights, or ``None`` for a fixed layer.
        predictions: predicted label of every ``test`` utterance, in input order.
        epochs_run: epochs the chosen model trained before early stopping.
    """

    test_accuracy: float
    valid_accuracy: float
    best_epoch: int
    lr: float
    layer_weights: list[float] | None
    predictions: list[str]
    epochs_run: int


class UtteranceClassifier(nn.Module):
    """A featurizer over the upstream's layers, then a head giving one set of logits per utterance.

    Args:
        featurizer: ``(..., layers, dim)`` -> ``(..., dim)``.
        head: on pooled inputs ``(batch, dim)`` -> ``(batch, classes)``; with ``pools_frames``,
            on frames ``(batch, frames, dim)`` and ``lengths`` -> ``(batch, classes)``.
        pools_frames: the head pools frames itself; otherwise frames are mean-pooled over
            each utterance's valid frames before the head.
    """

    def __init__(
        self, featurizer: WeightedLayerSum | FixedLayer, head: nn.Module, pools_frames: bool = False
    ) -> None:
        super().__init__()
        self.featurizer = featurizer
        self.head = head
        self.pools_frames = pools_frames

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(batch, classes)`` of pooled ``x (batch, layers, dim)``, or of frames
        ``x (batch, frames, layers, dim)`` with ``lengths (batch,)``."""
        mixed = self.featurizer(x)  # (batch, dim) or (batch, frames, dim)
        if lengths is None:
            return self.head(mixed)
        return self.head(mixed, lengths) if self.pools_frames else self.head(masked_mean(mixed, lengths))


def build_classifier(
    num_layers: int, feat_dim: int, num_classes: int, config: HeadTrainingConfig
) -> UtteranceClassifier:
    """The featurizer of ``config.layer`` then the head of ``config.head`` and ``config.pooling``."""
    featurizer = WeightedLayerSum(num_layers) if config.layer == "weighted" else FixedLayer(config.layer)
    if config.pooling == "attentive":
        head = AttentiveStatisticsPoolingHead(
            feat_dim, config.hidden, num_classes, config.dropout, config.attention_dim
        )
    elif config.head == "linear":
        head = LinearHead(feat_dim, num_classes)
    elif config.head == "projected_linear":
        head = ProjectedLinearHead(feat_dim, config.hidden, num_classes)
    else:
        head = MLPHead(feat_dim, config.hidden, num_classes, config.dropout)
    return UtteranceClassifier(featurizer, head, pools_frames=config.pooling == "attentive")


class FrameInputs:
    """The standardised frames of some utterances, served as padded batches.

    Frames stay in the (memory-mapped, float16) cache; a batch is gathered, converted to
    float32 and standardised when asked for, so memory holds one batch, not the corpus.

    With ``crop_seconds``, every utterance longer than the crop is served as a window of
    :meth:`~speechssl.downstream.cache.FrameFeatures.frames_in` ``(crop_seconds)`` frames at
    a random start, drawn anew each time it is batched from the global generator (which
    :func:`train_with_early_stopping` seeds with the run's seed), as s3prl's training sets
    crop ``max_timestep`` samples of audio at a random start. The frames of a cached
    whole-utterance forward differ from those of a forward on the cropped audio only through
    the encoder's context: frames near the crop's edges (and, through self-attention, every
    frame) were computed with audio outside the window.

    Args:
        frames: cached features ``(total_frames, layers, dim)`` of a whole corpus.
        rows: the utterances (indices into ``frames``) these inputs serve, in order.
        mean: ``(layers, dim)`` subtracted from every frame.
        std: ``(layers, dim)`` every frame is divided by.
        crop_seconds: random crops of this many seconds; ``None``: whole utterances.
    """

    def __init__(
        self,
        frames: FrameFeatures,
        rows: Sequence[int],
        mean: torch.Tensor,
        std: torch.Tensor,
        crop_seconds: float | None = None,
    ) -> None:
        check_crop_seconds(crop_seconds)
        self.frames = frames
        self.rows = list(rows)
        self.mean = mean
        self.std = std
        self.crop = None if crop_seconds is None else frames.frames_in(crop_seconds)

    def __len__(self) -> int:
        return len(self.rows)

    def batch(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero-padded frames ``(batch, frames, layers, dim)`` and ``lengths (batch,)`` of ``positions``."""
        rows = [self.rows[p] for p in positions.tolist()]
        offsets = self.frames.offsets
        lengths = torch.tensor([int(offsets[row + 1] - offsets[row]) for row in rows])  # (batch,)
        starts = torch.zeros_like(lengths)
        if self.crop is not None:
            starts = crop_offsets(lengths, self.crop, None)
            lengths = lengths.clamp(max=self.crop)
        utterances = [
            (
                torch.from_numpy(
                    np.asarray(self.frames.utterance(row)[start : start + length], dtype=np.float32)
                )
                - self.mean
            )
            / self.std
            for row, start, length in zip(rows, starts.tolist(), lengths.tolist(), strict=True)
        ]  # each (frames, layers, dim)
        return nn.utils.rnn.pad_sequence(utterances, batch_first=True), lengths


Inputs = torch.Tensor | FrameInputs


def _batch(inputs: Inputs, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Model arguments for ``positions`` of ``inputs``: pooled ``(x,)`` or frames ``(x, lengths)``."""
    return (inputs[positions],) if isinstance(inputs, torch.Tensor) else inputs.batch(positions)


def _loss(logits: torch.Tensor, targets: torch.Tensor, slots: Sequence[int] | None) -> torch.Tensor:
    """Cross-entropy of ``logits (batch, outputs)``: against ``targets (batch,)``, or summed over
    the slots of ``targets (batch, slots)``, slot ``k`` reading the next ``slots[k]`` outputs."""
    if slots is None:
        return F.cross_entropy(logits, targets)
    chunks = logits.split(list(slots), dim=-1)  # each (batch, slot values)
    return torch.stack([F.cross_entropy(chunk, targets[:, k]) for k, chunk in enumerate(chunks)]).sum()


def _predict(logits: torch.Tensor, slots: Sequence[int] | None) -> torch.Tensor:
    """Predicted class ``(batch,)``, or each slot's value ``(batch, slots)``."""
    if slots is None:
        return logits.argmax(dim=-1)
    return torch.stack([chunk.argmax(dim=-1) for chunk in logits.split(list(slots), dim=-1)], dim=1)


@torch.no_grad()
def _evaluate(
    model: nn.Module, x: Inputs, y: torch.Tensor, slots: Sequence[int] | None = None, batch_size: int = 256
) -> tuple[float, float, torch.Tensor]:
    """Accuracy (every slot right), mean cross-entropy and the predicted class indices
    ``(utterances,)`` (or ``(utterances, slots)``)."""
    model.eval()
    logits = torch.cat(
        [model(*_batch(x, positions)) for positions in torch.arange(len(y)).split(batch_size)]
    )  # (utterances, outputs)
    predicted = _predict(logits, slots)
    correct = predicted == y if slots is None else (predicted == y).all(dim=1)  # (utterances,)
    return int(correct.sum()) / len(y), float(_loss(logits, y, slots)), predicted


def fit_head(
    train: tuple[Inputs, torch.Tensor],
    valid: tuple[Inputs, torch.Tensor],
    num_classes: int,
    config: HeadTrainingConfig,
    lr: float,
    seed: int,
    slots: Sequence[int] | None = None,
) -> HeadFit:
    """Train one classifier with AdamW and early stopping on validation accuracy.

    :func:`train_with_early_stopping` with cross-entropy on ``train`` and the criterion
    accuracy, ties broken by lower cross-entropy, on ``valid``.

    ``seed`` fixes the head's initialisation, dropout and the order of the training
    utterances; the global random generators are left as they were.

    Args:
        train: pooled features ``(utterances, layers, feat)`` float32 (or
            :class:`FrameInputs`) and labels ``(utterances,)`` int64 class indices
            (with ``slots``: ``(utterances, slots)``, each slot's value index).
        valid: the same for the validation split.
        num_classes: number of classes (with ``slots``: their sum, the head's outputs).
        config: head, optimiser and stopping settings (its ``lr``/``lr_sweep`` are unused).
        lr: the learning rate.
        seed: seed of initialisation, dropout and data order.
        slots: the number of values of each slot (see ``HeadTrainingConfig.slot_separator``);
            ``None``: one label per utterance.
    """
    train_x, train_y = train
    valid_x, valid_y = valid
    num_layers, feat_dim = (train_x if isinstance(train_x, torch.Tensor) else train_x.mean).shape[-2:]

    def batch_loss(model: UtteranceClassifier, positions: torch.Tensor) -> torch.Tensor:
        return _loss(model(*_batch(train_x, positions)), train_y[positions], slots)

    def validate(model: UtteranceClassifier) -> tuple[float, float]:
        accuracy, loss, _ = _evaluate(model, valid_x, valid_y, slots)
        return accuracy, loss

    weights = None
    if config.balanced:
        counts = torch.bincount(train_y, minlength=num_classes).double()  # (classes,)
        weights = 1.0 / counts[train_y]  # (utterances,): each class drawn equally often

    run = train_with_early_stopping(
        lambda: build_classifier(num_layers, feat_dim, num_classes, config),
        batch_loss,
        len(train_y),
        validate,
        lambda score: _criterion(*score),
        config,
        lr,
        seed,
        weights,
        config.eval_steps,
    )
    return HeadFit(
        model=run.model,
        best_epoch=run.best_epoch,
        valid_accuracies=[accuracy for accuracy, _ in run.scores],
        valid_losses=[loss for _, loss in run.scores],
    )


def _check_layer(config: HeadTrainingConfig, num_layers: int) -> None:
    if config.layer != "weighted" and not -num_layers <= config.layer < num_layers:
        raise ValueError(f"layer: expected an index in [{-num_layers}, {num_layers}), found {config.layer}")


def _check_inputs(
    features: Mapping[str, np.ndarray | torch.Tensor],
    labels: Mapping[str, Sequence[str]],
    config: HeadTrainingConfig,
) -> None:
    for name, given in (("features", features), ("labels", labels)):
        if not set(SPLITS) <= set(given):
            raise ValueError(f"{name}: expected splits {sorted(SPLITS)}, found {sorted(given)}")
    shapes = {split: tuple(features[split].shape) for split in sorted(SPLITS)}
    for split, shape in shapes.items():
        if len(shape) != 3 or shape[1] == 0:
            raise ValueError(f"features[{split!r}]: expected (layers, utterances, feat), found shape {shape}")
        if shape[1] != len(labels[split]):
            raise ValueError(
                f"labels[{split!r}]: expected one label per utterance ({shape[1]}), found {len(labels[split])}"
            )
    if len({(shape[0], shape[2]) for shape in shapes.values()}) != 1:
        raise ValueError(f"features: expected the same (layers, feat) in every split, found shapes {shapes}")
    _check_layer(config, shapes["train"][0])


@dataclass(frozen=True)
class ClassSlots:
    """The classes a head predicts: one slot of classes, or several slots of values.

    Attributes:
        values: each slot's values, sorted, as seen in ``train``.
        separator: the string joining slot values into a label; ``None``: one slot.
    """

    values: tuple[tuple[str, ...], ...]
    separator: str | None

    @property
    def sizes(self) -> list[int] | None:
        """Each slot's number of values, or ``None`` with one slot (plain classes)."""
        return None if self.separator is None else [len(values) for values in self.values]

    def decode(self, predicted: torch.Tensor) -> list[str]:
        """The labels of predicted indices ``(utterances,)`` or ``(utterances, slots)``."""
        if self.separator is None:
            return [self.values[0][i] for i in predicted.tolist()]
        return [
            self.separator.join(self.values[k][i] for k, i in enumerate(row)) for row in predicted.tolist()
        ]


def _class_targets(
    labels: Mapping[str, Sequence[str]], separator: str | None = None
) -> tuple[ClassSlots, dict[str, torch.Tensor]]:
    """The sorted values of ``train`` and every split's int64 targets: ``(utterances,)`` class
    indices, or with ``separator`` ``(utterances, slots)`` each slot's value index."""
    split_labels = {
        split: [
            (str(label),) if separator is None else tuple(str(label).split(separator))
            for label in labels[split]
        ]
        for split in SPLITS
    }
    num_slots = {len(label) for rows in split_labels.values() for label in rows}
    if len(num_slots) != 1:
        raise ValueError(
            f"labels: expected the same number of {separator!r}-separated slots in every label, found {sorted(num_slots)}"
        )
    values = tuple(
        tuple(sorted({label[k] for label in split_labels["train"]})) for k in range(num_slots.pop())
    )
    index = [{value: i for i, value in enumerate(slot)} for slot in values]
    targets = {}
    for split in SPLITS:
        unseen = sorted(
            {
                separator.join(label) if separator else label[0]
                for label in split_labels[split]
                if any(v not in index[k] for k, v in enumerate(label))
            }
        )
        if unseen:
            raise ValueError(
                f"labels[{split!r}]: expected only classes seen in train, found {len(unseen)} unseen "
                f"(e.g. {unseen[:3]})"
            )
        indices = torch.tensor(
            [[index[k][v] for k, v in enumerate(label)] for label in split_labels[split]], dtype=torch.long
        ).reshape(len(split_labels[split]), len(values))  # (utterances, slots)
        targets[split] = indices[:, 0] if separator is None else indices  # (utterances,) for one slot
    return ClassSlots(values, separator), targets


def _fit_and_score(
    inputs: Mapping[str, Inputs],
    targets: Mapping[str, torch.Tensor],
    classes: ClassSlots,
    config: HeadTrainingConfig,
    seed: int,
) -> ClassifierResult:
    """One model per learning rate, the best on ``valid`` kept, and only that one scored on ``test``."""
    fits = [
        (
            fit_head(
                (inputs["train"], targets["train"]),
                (inputs["valid"], targets["valid"]),
                sum(len(values) for values in classes.values),
                config,
                lr,
                seed,
                classes.sizes,
            ),
            lr,
        )
        for lr in config.learning_rates()
    ]
    fit, lr = max(fits, key=lambda pair: pair[0].criterion())
    test_accuracy, _, predicted = _evaluate(fit.model, inputs["test"], targets["test"], classes.sizes)
    featurizer = fit.model.featurizer
    return ClassifierResult(
        test_accuracy=test_accuracy,
        valid_accuracy=fit.valid_accuracy,
        best_epoch=fit.best_epoch,
        lr=lr,
        layer_weights=featurizer.layer_weights() if isinstance(featurizer, WeightedLayerSum) else None,
        predictions=classes.decode(predicted),
        epochs_run=fit.epochs_run,
    )


def train_utterance_classifier(
    features: Mapping[str, np.ndarray | torch.Tensor],
    labels: Mapping[str, Sequence[str]],
    config: HeadTrainingConfig,
    seed: int,
) -> ClassifierResult:
    """Train an utterance classifier on pooled frozen features and score it on ``test``.

    Features are standardised per layer and feature dimension with the mean and standard
    deviation of ``train`` (dimensions constant on ``train`` are only centred). One model is
    trained per learning rate of ``config`` with the same ``seed``; the one with the best
    validation accuracy (then the lowest validation cross-entropy, then the first) is kept,
    and only that one sees ``test``. The same seed gives an identical result.

    With ``layer="weighted"`` the layer weights act on each layer's pooled statistics: for
    a mean this equals pooling the weighted sum of frames (both are linear), for a standard
    deviation it is the weighted sum of per-layer deviations, not the deviation of the
    weighted frames.

    Args:
        features: ``{"train", "valid", "test"}`` -> ``(layers, utterances, feat)`` pooled
            statistics of each utterance (e.g. the mean, or mean and standard deviation
            concatenated, of every upstream layer).
        labels: the same splits -> one label per utterance; classes are those of ``train``.
        config: head and training settings; its ``pooling`` must be ``mean``.
        seed: seed of initialisation, dropout and data order.

    Raises:
        ValueError: a split is missing, shapes disagree, or ``valid``/``test`` hold a label
            that never occurs in ``train``.
    """
    if config.pooling != "mean":
        raise ValueError(
            f"pooling: pooled features are classified with pooling='mean', found {config.pooling!r} "
            "(use train_frame_classifier on frames)"
        )
    if config.crop_seconds is not None:
        raise ValueError(
            f"crop_seconds: random crops are cut from frames, found pooled features and "
            f"crop_seconds={config.crop_seconds} (use train_frame_classifier)"
        )
    _check_inputs(features, labels, config)
    classes, targets = _class_targets(labels, config.slot_separator)
    tensors = {
        # (layers, utterances, feat) -> (utterances, layers, feat)
        split: torch.as_tensor(features[split], dtype=torch.float32).transpose(0, 1).contiguous()
        for split in SPLITS
    }
    mean = tensors["train"].mean(dim=0)  # (layers, feat)
    std = tensors["train"].std(dim=0, unbiased=False)  # (layers, feat)
    std = torch.where(std > 0, std, torch.ones_like(std))
    inputs = {split: (tensors[split] - mean) / std for split in tensors}
    return _fit_and_score(inputs, targets, classes, config, seed)


def frame_statistics(frames: FrameFeatures, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation ``(layers, dim)`` over every frame of ``rows``, accumulated in
    float64 one utterance at a time (a zero deviation becomes 1, so the dimension is only centred)."""
    total = torch.zeros(frames.frames.shape[1:], dtype=torch.float64)  # (layers, dim)
    squares = torch.zeros_like(total)
    count = 0
    for row in rows:
        utterance = torch.from_numpy(
            np.asarray(frames.utterance(row), dtype=np.float64)
        )  # (frames, layers, dim)
        total += utterance.sum(dim=0)
        squares += utterance.square().sum(dim=0)
        count += len(utterance)
    mean = total / count
    std = (squares / count - mean.square()).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6 * mean.abs().clamp_min(1), std, torch.ones_like(std))
    return mean.float(), std.float()


def train_frame_classifier(
    frames: FrameFeatures,
    rows: Mapping[str, Sequence[int]],
    labels: Mapping[str, Sequence[str]],
    config: HeadTrainingConfig,
    seed: int,
) -> ClassifierResult:
    """Train an utterance classifier that pools frozen frames itself, and score it on ``test``.

    The same procedure as :func:`train_utterance_classifier` (standardisation with ``train``
    statistics, learning rates chosen on ``valid``, ``test`` scored once), on frames: the
    featurizer mixes the layers of every frame and the head of ``config.pooling`` pools
    them (``attentive``: :class:`~speechssl.downstream.heads.AttentiveStatisticsPoolingHead`;
    ``mean``: the mean over each utterance's valid frames, then the head). With
    ``config.crop_seconds`` the training utterances are random crops (:class:`FrameInputs`).

    Args:
        frames: cached ``(frames, layers, dim)`` features of every utterance of a corpus.
        rows: ``{"train", "valid", "test"}`` -> utterance indices into ``frames``.
        labels: the same splits -> one label per utterance (in ``rows`` order).
        config: head and training settings.
        seed: seed of initialisation, dropout and data order.
    """
    for name, given in (("rows", rows), ("labels", labels)):
        if not set(SPLITS) <= set(given):
            raise ValueError(f"{name}: expected splits {sorted(SPLITS)}, found {sorted(given)}")
    for split in SPLITS:
        if len(rows[split]) == 0 or len(rows[split]) != len(labels[split]):
            raise ValueError(
                f"labels[{split!r}]: expected one label per utterance of a non-empty split "
                f"({len(rows[split])} rows), found {len(labels[split])}"
            )
    _check_layer(config, frames.frames.shape[1])
    classes, targets = _class_targets(labels, config.slot_separator)
    mean, std = frame_statistics(frames, rows["train"])
    inputs = {
        split: FrameInputs(frames, rows[split], mean, std, config.crop_seconds if split == "train" else None)
        for split in SPLITS
    }
    return _fit_and_score(inputs, targets, classes, config, seed)
