"""Speaker verification: trial lists, layer choice on dev speakers, EER on disjoint test speakers."""

from __future__ import annotations

import numpy as np
import pytest

from speechssl.data import Manifest, Utterance
from speechssl.downstream.cache import FeatureCache, PooledFeatures
from speechssl.downstream.verification import evaluate_verification, make_trials, save_trials
from speechssl.upstream import build_upstream


def _manifest(speakers: int = 9, per_speaker: int = 4) -> Manifest:
    return Manifest(
        Utterance(f"s{s}_{u}", f"/none/{s}_{u}.wav", 1.0, 16000, f"s{s}", "train", {"gender": "fm"[s % 2]})
        for s in range(speakers)
        for u in range(per_speaker)
    )


def test_trials_pair_every_same_speaker_utterance_and_balance_non_targets(tmp_path):
    manifest = _manifest()
    trials = make_trials(manifest, seed=0)
    targets = [t for t in trials if t.target]
    assert len(targets) == 9 * 6  # C(4, 2) pairs per speaker
    assert len(trials) == 2 * len(targets)
    speaker = {row.id: row.speaker for row in manifest}
    assert all((speaker[t.a] == speaker[t.b]) == t.target for t in trials)
    assert trials == make_trials(manifest, seed=0) and trials != make_trials(manifest, seed=1)
    lines = save_trials(trials, tmp_path / "trials.txt").read_text().splitlines()
    assert lines[0].split()[0] in {"0", "1"} and len(lines) == len(trials)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        make_trials(manifest.filter(speaker="s0"), seed=0)


@pytest.mark.timeout(10)
def test_trials_end_when_there_are_fewer_different_speaker_pairs_than_same_speaker_ones():
    # one speaker with 4 utterances (6 targets) and one with 1: only 4 different-speaker pairs exist
    manifest = Manifest(
        Utterance(id_, f"/none/{id_}.wav", 1.0, 16000, speaker, "train", {})
        for id_, speaker in [("a0", "a"), ("a1", "a"), ("a2", "a"), ("a3", "a"), ("b0", "b")]
    )
    trials = make_trials(manifest, seed=0)
    assert sum(t.target for t in trials) == 6
    assert sorted((t.a, t.b) for t in trials if not t.target) == [
        ("a0", "b0"),
        ("a1", "b0"),
        ("a2", "b0"),
        ("a3", "b0"),
    ]


def test_layer_is_chosen_on_dev_and_separable_speakers_give_zero_eer(tmp_path):
    manifest = _manifest()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(9, 16)) * 10
    informative = np.stack([centres[int(row.speaker[1:])] + rng.normal(size=16) * 0.1 for row in manifest])
    noise = rng.normal(size=(len(manifest), 16))
    pooled = PooledFeatures(
        ids=manifest.ids,
        layers=(0, 1),
        mean=np.stack([noise, informative]),
        std=np.zeros((2, len(manifest), 16)),
    )
    result = evaluate_verification(pooled, manifest, seed=0, trials_dir=tmp_path)
    assert result.layer == 1
    assert result.eer == 0.0 and result.min_dcf == 0.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dev_seed0.txt", "test_seed0.txt"]
    dev = {line.split()[1].split("_")[0] for line in (tmp_path / "dev_seed0.txt").read_text().splitlines()}
    test = {line.split()[1].split("_")[0] for line in (tmp_path / "test_seed0.txt").read_text().splitlines()}
    assert not dev & test, "dev and test speakers must be disjoint"


def test_fbank_verification_on_mini_librispeech_beats_chance(shared_data, tmp_path):
    from speechssl.data import load_corpus

    manifest = load_corpus("librispeech", shared_data("mini_librispeech") / "LibriSpeech")
    pooled = FeatureCache(tmp_path).pooled(build_upstream("fbank"), manifest)
    result = evaluate_verification(pooled, manifest, seed=0)
    assert result.num_trials > 1000
    assert 0.0 < result.eer < 0.35, result
