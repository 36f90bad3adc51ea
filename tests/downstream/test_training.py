"""Training heads on frozen pooled features: accuracy, early stopping, LR choice, seeds, layer weights."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from speechssl.downstream.cache import FrameFeatures
from speechssl.downstream.training import (
    ClassifierResult,
    FrameInputs,
    HeadTrainingConfig,
    build_classifier,
    fit_head,
    frame_statistics,
    train_frame_classifier,
    train_utterance_classifier,
    train_with_early_stopping,
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
    with pytest.raises(ValueError, match="head: expected 'linear', 'mlp' or 'projected_linear', found 'svm'"):
        HeadTrainingConfig(head="svm")
    with pytest.raises(ValueError, match=r"lr_sweep: expected finite learning rates > 0, found -0\.1"):
        HeadTrainingConfig(lr_sweep=[0.01, -0.1])
    with pytest.raises(ValueError, match=r"lr_sweep: expected a non-empty list .* found \[\]"):
        HeadTrainingConfig(lr_sweep=[])
    with pytest.raises(ValueError, match="patience: expected an integer >= 1 or null, found 0"):
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


def _frames(seed: int, count: int = 300, classes: int = 3) -> tuple[FrameFeatures, list[str]]:
    """Utterances of 20-40 noise frames ``(frames, layers=2, 8)``; layer 1 holds a 3-frame burst of
    the class's direction at a random position, layer 0 noise only."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, 8)) * 4.0
    utterances, labels = [], []
    for i in range(count):
        x = rng.normal(size=(int(rng.integers(20, 41)), 2, 8)) + 5.0
        start = int(rng.integers(0, len(x) - 3))
        x[start : start + 3, 1] += centres[i % classes]
        utterances.append(x)
        labels.append(f"class{i % classes}")
    lengths = [len(u) for u in utterances]
    features = FrameFeatures(
        ids=[str(i) for i in range(count)],
        layers=(0, 1),
        frames=np.concatenate(utterances).astype(np.float16),
        offsets=np.concatenate([[0], np.cumsum(lengths)]),
        downsample_rate=320,
    )
    return features, labels


def _frame_rows(labels: list[str]) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    rows = {"train": list(range(180)), "valid": list(range(180, 240)), "test": list(range(240, 300))}
    return rows, {split: [labels[i] for i in indices] for split, indices in rows.items()}


def test_attentive_frame_classifier_finds_short_bursts_and_is_reproducible():
    frames, labels = _frames(0)
    rows, split_labels = _frame_rows(labels)
    config = HeadTrainingConfig(head="mlp", pooling="attentive", hidden=32, lr=3e-3, max_epochs=60)
    result = train_frame_classifier(frames, rows, split_labels, config, seed=0)
    assert result.test_accuracy >= 0.9, result
    assert result.layer_weights[1] > 0.6, result.layer_weights  # the burst lives in layer 1
    assert train_frame_classifier(frames, rows, split_labels, config, seed=0) == result


def test_frame_statistics_match_numpy_over_the_chosen_rows():
    frames, _ = _frames(1, count=10)
    mean, std = frame_statistics(frames, [2, 5, 7])
    stacked = np.concatenate([frames.utterance(i) for i in (2, 5, 7)]).astype(np.float64)
    np.testing.assert_allclose(mean.numpy(), stacked.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(std.numpy(), stacked.std(axis=0), rtol=1e-4)


def test_pooling_errors_say_expected_and_found():
    with pytest.raises(ValueError, match="pooling: expected 'mean' or 'attentive', found 'max'"):
        HeadTrainingConfig(pooling="max")
    with pytest.raises(ValueError, match="expected head='mlp', found 'linear'"):
        HeadTrainingConfig(pooling="attentive", head="linear")
    features, labels = _pooled(0)
    with pytest.raises(ValueError, match="use train_frame_classifier on frames"):
        train_utterance_classifier(features, labels, HeadTrainingConfig(head="mlp", pooling="attentive"), 0)
    frames, frame_labels = _frames(2, count=30)
    rows = {"train": list(range(10)), "valid": list(range(10, 20)), "test": list(range(20, 30))}
    split_labels = {split: [frame_labels[i] for i in indices] for split, indices in rows.items()}
    with pytest.raises(ValueError, match=r"labels\['valid'\]: expected one label per utterance"):
        train_frame_classifier(frames, rows, {**split_labels, "valid": []}, HeadTrainingConfig(), 0)


def _regression_run(max_grad_norm: float | None, seed: int = 0):
    """A linear regression trained by the shared early-stopping loop; validation reads the last
    update's gradient norm (clipping works on the gradients in place) and the loss."""
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1)) * 100.0
    y = x.sum(dim=1, keepdim=True)
    settings = HeadTrainingConfig(batch_size=16, max_epochs=3, patience=3, max_grad_norm=max_grad_norm)

    def validate(model: torch.nn.Module) -> tuple[float, float]:
        norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in model.parameters()]))
        return float(norm), float(torch.nn.functional.mse_loss(model(x), y))

    return train_with_early_stopping(
        lambda: torch.nn.Linear(4, 1),
        lambda model, positions: torch.nn.functional.mse_loss(model(x[positions]), y[positions]),
        len(x),
        validate,
        lambda score: -score[1],
        settings,
        lr=1e-2,
        seed=seed,
    )


def test_gradient_clipping_is_configurable():
    clipped = _regression_run(max_grad_norm=0.5)
    free = _regression_run(max_grad_norm=None)
    assert all(norm <= 0.5 + 1e-5 for norm, _ in clipped.scores)
    assert all(norm > 0.5 for norm, _ in free.scores)


def test_the_loop_is_seeded_locally_and_leaves_the_global_generator_alone():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = _regression_run(max_grad_norm=None, seed=4)
    assert torch.equal(torch.get_rng_state(), before)
    again = _regression_run(max_grad_norm=None, seed=4)
    other = _regression_run(max_grad_norm=None, seed=5)
    assert first.scores == again.scores != other.scores
    assert torch.equal(first.model.weight, again.model.weight)


def test_max_grad_norm_must_be_positive_or_null():
    with pytest.raises(ValueError, match="max_grad_norm: expected a number > 0 or null, found 0"):
        HeadTrainingConfig(max_grad_norm=0)


def _ramp_frames(lengths: list[int]) -> FrameFeatures:
    """Utterances whose frame ``t`` holds ``t`` in every layer and dimension, at 100 frames a second."""
    frames = np.concatenate(
        [np.arange(n, dtype=np.float16)[:, None, None].repeat(2, 1).repeat(3, 2) for n in lengths]
    )
    return FrameFeatures(
        [str(i) for i in range(len(lengths))], (0, 1), frames, np.concatenate([[0], np.cumsum(lengths)]), 160
    )


def test_frame_inputs_serve_random_crops_redrawn_every_batch():
    frames = _ramp_frames([50, 5])
    assert frames.frames_in(0.1) == 10 and frames.frames_in(8.0) == 800, "16 kHz / 160 samples a frame"
    inputs = FrameInputs(frames, [0, 1], torch.zeros(2, 3), torch.ones(2, 3), crop_seconds=0.1)
    torch.manual_seed(0)
    starts = []
    for _ in range(400):
        x, lengths = inputs.batch(torch.tensor([0, 1]))
        assert x.shape == (2, 10, 2, 3) and lengths.tolist() == [10, 5]
        window = x[0, :, 0, 0]
        assert torch.equal(window, window[0] + torch.arange(10.0)), "a contiguous window of the utterance"
        assert torch.equal(x[1, :5, 0, 0], torch.arange(5.0)), "a shorter utterance is whole"
        starts.append(int(window[0]))
    assert set(starts) == set(range(41)), "every start 0..50-10, drawn anew each batch"
    torch.manual_seed(0)
    assert int(inputs.batch(torch.tensor([0, 1]))[0][0, 0, 0, 0]) == starts[0], (
        "the global seed fixes the draws"
    )
    whole = FrameInputs(frames, [0, 1], torch.zeros(2, 3), torch.ones(2, 3)).batch(torch.tensor([0, 1]))
    assert whole[1].tolist() == [50, 5]
    with pytest.raises(
        ValueError, match=r"crop_seconds: expected a duration > 0 in seconds or null, found 0"
    ):
        FrameInputs(frames, [0], torch.zeros(2, 3), torch.ones(2, 3), crop_seconds=0)


def test_mean_pooled_frames_give_the_pooled_head_its_input():
    frames = _ramp_frames([7, 4])
    config = HeadTrainingConfig(head="projected_linear", hidden=4)
    model = build_classifier(2, 3, 5, config)
    x, lengths = FrameInputs(frames, [0, 1], torch.zeros(2, 3), torch.ones(2, 3)).batch(torch.tensor([0, 1]))
    pooled = torch.tensor([3.0, 1.5])[:, None, None].expand(
        2, 2, 3
    )  # (batch, layers, dim): mean of 0..6, 0..3
    assert torch.allclose(model(x, lengths), model(pooled), atol=1e-6), "padding is not averaged in"
    with pytest.raises(
        ValueError, match="crop_seconds: random crops are cut from frames, found pooled features"
    ):
        features = {split: np.zeros((2, 3, 3), dtype=np.float32) for split in ("train", "valid", "test")}
        labels = {split: ["a", "b", "a"] for split in features}
        train_utterance_classifier(features, labels, dataclasses.replace(config, crop_seconds=8.0), seed=0)
