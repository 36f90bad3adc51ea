"""Training heads on frozen pooled features: accuracy, early stopping, LR choice, seeds, layer weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from speechssl.downstream.training import (
    ClassifierResult,
    HeadTrainingConfig,
    fit_head,
    train_utterance_classifier,
)

SPLITS = {"train": 240, "valid": 90, "test": 90}


def _pooled(
    seed: int,
    layers: int = 3,
    feat: int = 8,
    classes: int = 3,
    signal: dict[int, float] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Gaussian ``(layers, utterances, feat)`` features per split; layer ``l`` carries class
    centres scaled by ``signal[l]`` (no layer carries any by default: pure noise)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, feat))
    features, labels = {}, {}
    for split, count in SPLITS.items():
        y = np.arange(count) % classes
        x = rng.normal(size=(layers, count, feat)) * 3.0 + 10.0  # far from standardised
        for layer, scale in (signal or {}).items():
            x[layer] += scale * 3.0 * centres[y]
        features[split] = x.astype(np.float32)
        labels[split] = [f"class{c}" for c in y]
    return features, labels


def test_separable_features_are_learnt_and_noise_stays_at_chance():
    features, labels = _pooled(0, signal={1: 3.0})
    for config in (
        HeadTrainingConfig(head="linear", layer="weighted"),
        HeadTrainingConfig(head="mlp", hidden=32, layer=1),
    ):
        result = train_utterance_classifier(features, labels, config, seed=0)
        assert result.test_accuracy >= 0.97 and result.valid_accuracy >= 0.97, config
        assert len(result.predictions) == SPLITS["test"]
        assert set(result.predictions) <= {"class0", "class1", "class2"}
        agreement = np.mean(np.asarray(result.predictions) == np.asarray(labels["test"]))
        assert agreement == pytest.approx(result.test_accuracy)

    noise, labels = _pooled(1)
    accuracies = [
        train_utterance_classifier(noise, labels, HeadTrainingConfig(), seed=seed).test_accuracy
        for seed in range(3)
    ]
    assert abs(np.mean(accuracies) - 1 / 3) < 0.12


def test_constant_feature_dimensions_are_only_centred():
    features, labels = _pooled(0, signal={0: 3.0})
    for split in features:
        features[split][:, :, 0] = 7.0
    result = train_utterance_classifier(features, labels, HeadTrainingConfig(), seed=0)
    assert result.test_accuracy >= 0.95
    assert all(np.isfinite(result.layer_weights))


def _tensors(features: dict[str, np.ndarray], labels: dict[str, list[str]], split: str):
    x = torch.from_numpy(features[split]).transpose(0, 1)  # (layers, utt, feat) -> (utt, layers, feat)
    x = (x - 10.0) / 3.0
    y = torch.tensor([int(label.removeprefix("class")) for label in labels[split]])
    return x, y


def test_early_stopping_stops_after_patience_and_restores_the_best_epoch():
    features, labels = _pooled(2, signal={0: 0.4})
    config = HeadTrainingConfig(patience=4, max_epochs=200, batch_size=32, layer=0)
    valid = _tensors(features, labels, "valid")
    fit = fit_head(_tensors(features, labels, "train"), valid, 3, config, lr=0.05, seed=0)

    criteria = [(a, -loss) for a, loss in zip(fit.valid_accuracies, fit.valid_losses, strict=True)]
    assert fit.epochs_run == len(criteria) == fit.best_epoch + config.patience < config.max_epochs
    assert criteria.index(max(criteria)) == fit.best_epoch - 1  # the first best epoch
    assert fit.valid_accuracy == max(fit.valid_accuracies)
    assert fit.valid_loss != fit.valid_losses[-1]  # the last epoch's weights differ
    with torch.no_grad():
        logits = fit.model(valid[0])  # (utterances, classes)
    assert int((logits.argmax(dim=-1) == valid[1]).sum()) / len(valid[1]) == fit.valid_accuracy
    assert float(torch.nn.functional.cross_entropy(logits, valid[1])) == pytest.approx(fit.valid_loss)
    assert not fit.model.training


def test_lr_sweep_chooses_on_validation_and_never_on_test():
    features, labels = _pooled(3, classes=4, signal={0: 2.0}, layers=1)
    # test labels shifted by one class: a perfect model scores 0 on test, a frozen one ~chance
    shift = {f"class{c}": f"class{(c + 1) % 4}" for c in range(4)}
    labels["test"] = [shift[label] for label in labels["test"]]
    base = HeadTrainingConfig(layer=0, max_epochs=20)
    single = {
        lr: train_utterance_classifier(features, labels, dataclasses.replace(base, lr=lr), seed=0)
        for lr in (1e-6, 0.1)
    }
    assert single[0.1].valid_accuracy > single[1e-6].valid_accuracy
    assert single[0.1].test_accuracy < single[1e-6].test_accuracy  # choosing on test would pick 1e-6
    for sweep in ([1e-6, 0.1], [0.1, 1e-6]):
        result = train_utterance_classifier(
            features, labels, dataclasses.replace(base, lr_sweep=sweep), seed=0
        )
        assert result == single[0.1]
        assert result.lr == 0.1 and result.test_accuracy < 0.1


def test_same_seed_same_result_and_different_seeds_differ():
    features, labels = _pooled(4, signal={1: 0.5})
    config = HeadTrainingConfig(head="mlp", hidden=16, dropout=0.3)
    rng_state = torch.get_rng_state()
    first = train_utterance_classifier(features, labels, config, seed=7)
    assert torch.equal(torch.get_rng_state(), rng_state)  # global generators untouched
    torch.manual_seed(123)  # nor influenced by them
    again = train_utterance_classifier(features, labels, config, seed=7)
    assert isinstance(first, ClassifierResult) and first == again
    other = train_utterance_classifier(features, labels, config, seed=8)
    assert other.layer_weights != first.layer_weights


def test_layer_weights_concentrate_on_the_informative_layer():
    features, labels = _pooled(5, layers=6, signal={4: 1.0})
    for seed in range(2):
        result = train_utterance_classifier(features, labels, HeadTrainingConfig(), seed=seed)
        weights = result.layer_weights
        assert weights is not None and sum(weights) == pytest.approx(1.0)
        others = weights[:4] + weights[5:]
        assert weights[4] > 2 / 6 and weights[4] > 2 * max(others), weights
    fixed = train_utterance_classifier(features, labels, HeadTrainingConfig(layer=4), seed=0)
    assert fixed.layer_weights is None and fixed.test_accuracy >= 0.8


def test_config_validation_says_expected_and_found():
    with pytest.raises(ValueError, match="head: expected 'linear' or 'mlp', found 'svm'"):
        HeadTrainingConfig(head="svm")
    with pytest.raises(ValueError, match=r"lr_sweep: expected finite learning rates > 0, found -0\.1"):
        HeadTrainingConfig(lr_sweep=[0.01, -0.1])
    with pytest.raises(ValueError, match=r"lr_sweep: expected a non-empty list .* found \[\]"):
        HeadTrainingConfig(lr_sweep=[])
    with pytest.raises(ValueError, match="patience: expected an integer >= 1, found 0"):
        HeadTrainingConfig(patience=0)
    with pytest.raises(ValueError, match="layer: expected 'weighted' or a layer index, found 'last'"):
        HeadTrainingConfig(layer="last")
    assert HeadTrainingConfig(lr=0.5).learning_rates() == [0.5]
    assert HeadTrainingConfig(lr_sweep=[0.1, 0.01]).learning_rates() == [0.1, 0.01]


def test_input_validation_says_expected_and_found():
    features, labels = _pooled(0)
    config = HeadTrainingConfig(max_epochs=1)
    with pytest.raises(ValueError, match=r"features: expected splits \['test', 'train', 'valid'\]"):
        train_utterance_classifier({"train": features["train"]}, labels, config, seed=0)
    with pytest.raises(
        ValueError, match=r"labels\['valid'\]: expected one label per utterance \(90\), found 89"
    ):
        train_utterance_classifier(features, {**labels, "valid": labels["valid"][1:]}, config, seed=0)
    with pytest.raises(ValueError, match=r"expected the same \(layers, feat\) in every split"):
        train_utterance_classifier({**features, "test": features["test"][:2]}, labels, config, seed=0)
    with pytest.raises(ValueError, match=r"layer: expected an index in \[-3, 3\), found 3"):
        train_utterance_classifier(features, labels, HeadTrainingConfig(layer=3), seed=0)
    with pytest.raises(
        ValueError, match=r"labels\['test'\]: expected only classes seen in train, found 1 unseen"
    ):
        train_utterance_classifier(features, {**labels, "test": ["new", *labels["test"][1:]]}, config, seed=0)
