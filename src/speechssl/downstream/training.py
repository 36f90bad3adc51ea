"""Training downstream heads on frozen, pooled upstream features.

The SUPERB protocol (Yang et al. 2021, §3) with the upstream frozen: a featurizer (a
learnable softmax-weighted sum of layers, or one fixed layer) and a small head are trained
with AdamW (Loshchilov & Hutter 2019) on ``train``; the epoch with the best ``valid``
accuracy (ties broken by cross-entropy) is kept (early stopping, Prechelt 1998), the
learning rate is optionally chosen the same way, and ``test`` is scored once, by the
chosen model only.

Everything stays in memory as torch tensors, so one run on a few thousand pooled
utterances takes well under a second on a CPU, and many seeds, tasks and upstreams can be
evaluated in minutes.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from speechssl.downstream.featurizer import FixedLayer, WeightedLayerSum
from speechssl.downstream.heads import LinearHead, MLPHead


@dataclass
class HeadTrainingConfig:
    """How a head is trained on frozen features.

    Attributes:
        head: ``linear`` (:class:`~speechssl.downstream.heads.LinearHead`) or ``mlp``
            (:class:`~speechssl.downstream.heads.MLPHead`).
        hidden: hidden width of the ``mlp`` head.
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
        layer: ``weighted`` (SUPERB's learnable weighted sum of all layers) or the index
            of one layer (negative counts from the last).
    """

    head: Literal["linear", "mlp"] = "linear"
    hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-2
    lr_sweep: list[float] | None = None
    weight_decay: float = 1e-2
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    layer: Literal["weighted"] | int = "weighted"

    def __post_init__(self) -> None:
        if self.head not in ("linear", "mlp"):
            raise ValueError(f"head: expected 'linear' or 'mlp', found {self.head!r}")
        if self.hidden < 1:
            raise ValueError(f"hidden: expected an integer >= 1, found {self.hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), found {self.dropout}")
        for name, value in [("lr", self.lr), *(("lr_sweep", lr) for lr in self.lr_sweep or ())]:
            if not (value > 0 and math.isfinite(value)):
                raise ValueError(f"{name}: expected finite learning rates > 0, found {value}")
        if self.lr_sweep is not None and len(self.lr_sweep) == 0:
            raise ValueError("lr_sweep: expected a non-empty list of learning rates or null, found []")
        if not self.weight_decay >= 0:
            raise ValueError(f"weight_decay: expected a number >= 0, found {self.weight_decay}")
        for name in ("batch_size", "max_epochs", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: expected an integer >= 1, found {getattr(self, name)}")
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
        model: ``featurizer`` then ``head`` (an ``nn.Sequential``), in eval mode, holding the
            weights of ``best_epoch``.
        best_epoch: 1-based epoch with the best validation criterion (the first, on ties).
        valid_accuracies: validation accuracy after every epoch run.
        valid_losses: validation cross-entropy after every epoch run.
    """

    model: nn.Sequential
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


def build_classifier(
    num_layers: int, feat_dim: int, num_classes: int, config: HeadTrainingConfig
) -> nn.Sequential:
    """The featurizer of ``config.layer`` followed by the head of ``config.head``.

    The result maps ``(batch, layers, feat)`` to logits ``(batch, classes)``.
    """
    featurizer = WeightedLayerSum(num_layers) if config.layer == "weighted" else FixedLayer(config.layer)
    head = (
        LinearHead(feat_dim, num_classes)
        if config.head == "linear"
        else MLPHead(feat_dim, config.hidden, num_classes, config.dropout)
    )
    return nn.Sequential(OrderedDict(featurizer=featurizer, head=head))


@torch.no_grad()
def _evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, torch.Tensor]:
    """Accuracy, mean cross-entropy and ``(utterances,)`` predicted class indices."""
    model.eval()
    logits = model(x)  # (utterances, classes)
    predicted = logits.argmax(dim=-1)
    accuracy = int((predicted == y).sum()) / len(y)
    return accuracy, float(F.cross_entropy(logits, y)), predicted


def fit_head(
    train: tuple[torch.Tensor, torch.Tensor],
    valid: tuple[torch.Tensor, torch.Tensor],
    num_classes: int,
    config: HeadTrainingConfig,
    lr: float,
    seed: int,
) -> HeadFit:
    """Train one classifier with AdamW and early stopping on validation accuracy.

    After every epoch the model is scored on ``valid``; the epoch with the best criterion
    (accuracy, ties broken by lower cross-entropy) is kept, and training stops after
    ``config.patience`` epochs without a better one.

    ``seed`` fixes the head's initialisation, dropout and the order of the training
    utterances; the global random generators are left as they were.

    Args:
        train: features ``(utterances, layers, feat)`` float32 and labels ``(utterances,)``
            int64 class indices.
        valid: the same for the validation split.
        num_classes: number of classes.
        config: head, optimiser and stopping settings (its ``lr``/``lr_sweep`` are unused).
        lr: the learning rate.
        seed: seed of initialisation, dropout and data order.
    """
    train_x, train_y = train
    valid_x, valid_y = valid
    num_utterances, num_layers, feat_dim = train_x.shape
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        order = torch.Generator().manual_seed(seed)
        model = build_classifier(num_layers, feat_dim, num_classes, config)
        decayed = [p for p in model.parameters() if p.dim() >= 2]
        undecayed = [p for p in model.parameters() if p.dim() < 2]
        optimizer = torch.optim.AdamW(
            [
                {"params": decayed, "weight_decay": config.weight_decay},
                {"params": undecayed, "weight_decay": 0.0},
            ],
            lr=lr,
        )
        accuracies: list[float] = []
        losses: list[float] = []
        best_epoch = 0
        best_state: dict[str, torch.Tensor] = {}
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            permutation = torch.randperm(num_utterances, generator=order)
            for batch in permutation.split(config.batch_size):
                loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            accuracy, valid_loss, _ = _evaluate(model, valid_x, valid_y)
            accuracies.append(accuracy)
            losses.append(valid_loss)
            if best_epoch == 0 or _criterion(accuracy, valid_loss) > _criterion(
                accuracies[best_epoch - 1], losses[best_epoch - 1]
            ):
                best_epoch = epoch
                best_state = copy.deepcopy(model.state_dict())
            elif epoch - best_epoch >= config.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return HeadFit(model=model, best_epoch=best_epoch, valid_accuracies=accuracies, valid_losses=losses)


def _check_inputs(
    features: Mapping[str, np.ndarray | torch.Tensor],
    labels: Mapping[str, Sequence[str]],
    config: HeadTrainingConfig,
) -> None:
    splits = {"train", "valid", "test"}
    for name, given in (("features", features), ("labels", labels)):
        if not splits <= set(given):
            raise ValueError(f"{name}: expected splits {sorted(splits)}, found {sorted(given)}")
    shapes = {split: tuple(features[split].shape) for split in sorted(splits)}
    for split, shape in shapes.items():
        if len(shape) != 3 or shape[1] == 0:
            raise ValueError(f"features[{split!r}]: expected (layers, utterances, feat), found shape {shape}")
        if shape[1] != len(labels[split]):
            raise ValueError(
                f"labels[{split!r}]: expected one label per utterance ({shape[1]}), found {len(labels[split])}"
            )
    if len({(shape[0], shape[2]) for shape in shapes.values()}) != 1:
        raise ValueError(f"features: expected the same (layers, feat) in every split, found shapes {shapes}")
    num_layers = shapes["train"][0]
    if config.layer != "weighted" and not -num_layers <= config.layer < num_layers:
        raise ValueError(f"layer: expected an index in [{-num_layers}, {num_layers}), found {config.layer}")


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
        config: head and training settings.
        seed: seed of initialisation, dropout and data order.

    Raises:
        ValueError: a split is missing, shapes disagree, or ``valid``/``test`` hold a label
            that never occurs in ``train``.
    """
    _check_inputs(features, labels, config)
    classes = sorted({str(label) for label in labels["train"]})
    index = {label: i for i, label in enumerate(classes)}
    targets = {}
    for split in ("train", "valid", "test"):
        unseen = sorted({str(label) for label in labels[split]} - index.keys())
        if unseen:
            raise ValueError(
                f"labels[{split!r}]: expected only classes seen in train, found {len(unseen)} unseen "
                f"(e.g. {unseen[:3]})"
            )
        targets[split] = torch.tensor([index[str(label)] for label in labels[split]], dtype=torch.long)

    tensors = {
        # (layers, utterances, feat) -> (utterances, layers, feat)
        split: torch.as_tensor(features[split], dtype=torch.float32).transpose(0, 1).contiguous()
        for split in ("train", "valid", "test")
    }
    mean = tensors["train"].mean(dim=0)  # (layers, feat)
    std = tensors["train"].std(dim=0, unbiased=False)  # (layers, feat)
    std = torch.where(std > 0, std, torch.ones_like(std))
    data = {split: ((tensors[split] - mean) / std, targets[split]) for split in tensors}

    fits = [
        (fit_head(data["train"], data["valid"], len(classes), config, lr, seed), lr)
        for lr in config.learning_rates()
    ]
    fit, lr = max(fits, key=lambda pair: pair[0].criterion())
    test_accuracy, _, predicted = _evaluate(fit.model, *data["test"])
    featurizer = fit.model.featurizer
    return ClassifierResult(
        test_accuracy=test_accuracy,
        valid_accuracy=fit.valid_accuracy,
        best_epoch=fit.best_epoch,
        lr=lr,
        layer_weights=featurizer.layer_weights() if isinstance(featurizer, WeightedLayerSum) else None,
        predictions=[classes[i] for i in predicted.tolist()],
        epochs_run=fit.epochs_run,
    )
