"""CTC ASR head: greedy decoding, vocabulary checks, and learning a toy transcription task."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.downstream.asr import (
    CTCTrainingConfig,
    character_vocabulary,
    greedy_decode,
    stack_frames,
    train_ctc,
)
from speechssl.downstream.cache import FrameFeatures


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    vocabulary = character_vocabulary(["ab"])
    assert vocabulary == ["<blank>", "a", "b"]
    path = [[1, 1, 0, 1, 2, 2, 0], [2, 0, 0, 0, 0, 0, 0]]  # (batch, frames) best symbols
    log_probs = torch.nn.functional.one_hot(torch.tensor(path), 3).float().log().transpose(0, 1)
    assert greedy_decode(log_probs, torch.tensor([7, 1]), vocabulary) == ["aab", "b"]


def _toy(words: list[str], rng: np.random.Generator) -> tuple[FrameFeatures, list[str]]:
    """Each character is 3 frames of its own direction in 8-D, characters separated by 2 silent frames."""
    directions = {c: rng.normal(size=8) * 3 for c in "abcd"}
    utterances = []
    for word in words:
        frames = [np.zeros((2, 8))]
        for char in word:
            frames += [directions[char] + rng.normal(size=(3, 8)) * 0.1, np.zeros((2, 8))]
        utterances.append(np.concatenate(frames)[:, None, :])  # (frames, layers=1, 8)
    lengths = [len(u) for u in utterances]
    return (
        FrameFeatures(
            ids=[str(i) for i in range(len(words))],
            layers=(0,),
            frames=np.concatenate(utterances).astype(np.float16),
            offsets=np.concatenate([[0], np.cumsum(lengths)]),
            downsample_rate=160,
        ),
        words,
    )


@pytest.mark.parametrize(("max_frame_rate", "max_cer"), [(100, 0.1), (50, 0.15)])
def test_ctc_head_learns_a_toy_transcription(max_frame_rate, max_cer):
    """Characters of 3 frames at 100 Hz, read as they are or stacked to 50 Hz."""
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcd"), size=rng.integers(2, 5))) for _ in range(120)]
    frames, texts = _toy(words, rng)
    rows = {"train": list(range(80)), "valid": list(range(80, 100)), "test": list(range(100, 120))}
    config = CTCTrainingConfig(
        hidden=32,
        num_layers=1,
        lr=1e-2,
        batch_size=8,
        max_epochs=30,
        patience=5,
        max_frame_rate=max_frame_rate,
    )
    result = train_ctc(frames, rows, texts, config, seed=0)
    assert result.error_rates["cer"] < max_cer, result
    assert result.layer_weights == [1.0]
    again = train_ctc(frames, rows, texts, config, seed=0)
    assert (again.error_rates, again.best_epoch) == (result.error_rates, result.best_epoch)


def test_unseen_characters_are_an_error():
    frames, texts = _toy(["ab", "ab", "cd"], np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"characters \['c', 'd'\] occur in valid/test but never in train"):
        train_ctc(frames, {"train": [0], "valid": [1], "test": [2]}, texts, CTCTrainingConfig(), seed=0)


def test_stacking_concatenates_consecutive_frames_and_rounds_lengths_up():
    x = torch.arange(2 * 5 * 2, dtype=torch.float32).reshape(2, 5, 2)  # (batch, frames, dim)
    stacked, lengths = stack_frames(x, torch.tensor([5, 3]), 2)
    assert stacked.shape == (2, 3, 4)
    assert stacked[0, 0].tolist() == [0, 1, 2, 3] and stacked[0, 2].tolist() == [8, 9, 0, 0]
    assert lengths.tolist() == [3, 2]
    assert stack_frames(x, torch.tensor([5, 3]), 1)[0] is x


@pytest.mark.parametrize(("downsample_rate", "expected"), [(160, 4), (320, 2), (640, 1), (400, 2)])
def test_frame_rate_sets_the_stacking(downsample_rate, expected):
    assert CTCTrainingConfig(max_frame_rate=25).stacking(downsample_rate) == expected


def test_ctc_training_streams_cached_frames_and_decays_only_matrices(monkeypatch):
    """Frames are read from the cache batch by batch in every epoch, and the global RNG is untouched."""
    rng = np.random.default_rng(1)
    words = ["".join(rng.choice(list("ab"), size=2)) for _ in range(24)]
    frames, texts = _toy(words, rng)
    read = []
    utterance = FrameFeatures.utterance
    monkeypatch.setattr(FrameFeatures, "utterance", lambda self, i: read.append(i) or utterance(self, i))
    batches = []
    original_adamw = torch.optim.AdamW

    def adamw(groups, **kwargs):
        batches.append(groups)
        return original_adamw(groups, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", adamw)
    torch.manual_seed(7)
    before = torch.get_rng_state()
    config = CTCTrainingConfig(hidden=8, num_layers=1, batch_size=4, max_epochs=2, weight_decay=0.3)
    train_ctc(
        frames,
        {"train": list(range(16)), "valid": [16, 17, 18, 19], "test": [20, 21, 22, 23]},
        texts,
        config,
        0,
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert sorted(set(read)) == list(range(24))
    # every train utterance is read again for each epoch (and once for the statistics), not kept in memory
    assert all(read.count(row) == 3 for row in range(16))
    groups = batches[0]
    assert {group["weight_decay"] for group in groups} == {0.3, 0.0}
    assert all(p.ndim >= 2 for group in groups if group["weight_decay"] == 0.3 for p in group["params"])
    assert all(p.ndim < 2 for group in groups if group["weight_decay"] == 0.0 for p in group["params"])
