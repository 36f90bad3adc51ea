"""Unit labels cache: hits, misses, invalidation by tokenizer or audio, atomic writes, the reader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from speechssl.data import AudioError, Manifest, load_audio
from speechssl.models.encoder import UnitFeatureConfig, UnitTokenizerConfig
from speechssl.models.units import UnitFeatures, UnitTokenizer
from speechssl.units.labels import UnitLabels, label_corpus, tokenizer_fingerprint, units_dtype


def _tokenizer(seed: int = 0, k: int = 5) -> UnitTokenizer:
    features = UnitFeatures(UnitFeatureConfig(source="mfcc", pool=2))
    centroids = torch.randn(k, 39, generator=torch.Generator().manual_seed(seed)) * 10
    return UnitTokenizer(
        UnitTokenizerConfig(features.config, num_units=k, feature_dim=39), features, centroids
    )


def _entries(root) -> list:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def test_labels_match_the_tokenizer_and_are_reused(tone_corpus, tmp_path):
    tokenizer = _tokenizer()
    root = tmp_path / "cache"
    labels = label_corpus(tokenizer, tone_corpus, root, max_batch_seconds=1.5)
    assert not labels.hit and labels.entry.parent.parent == root
    assert list(labels) == tone_corpus.ids and len(labels) == len(tone_corpus)
    assert labels.num_units == 5 and labels.downsample_rate == 320
    assert labels.fingerprint == tokenizer_fingerprint(tokenizer)
    for row in tone_corpus:
        waveform = torch.from_numpy(load_audio(row.path, 16000))[None]  # (1, samples)
        expected = tokenizer(waveform, torch.tensor([waveform.shape[1]])).units[0].numpy()
        np.testing.assert_array_equal(labels[row.id], expected)
        assert labels[row.id].dtype == np.int16
    assert int(labels.lengths.sum()) == labels.meta["total_frames"]
    with pytest.raises(KeyError, match="no units for utterance 'nope'"):
        labels["nope"]

    again = label_corpus(tokenizer, tone_corpus, root)
    assert again.hit and again.entry == labels.entry
    assert _entries(root) == [labels.entry]


def test_new_tokenizer_or_edited_audio_recompute(tone_corpus, tmp_path):
    root = tmp_path / "cache"
    first = label_corpus(_tokenizer(seed=0), tone_corpus, root)
    other_centroids = label_corpus(_tokenizer(seed=1), tone_corpus, root)
    other_k = label_corpus(_tokenizer(seed=0, k=6), tone_corpus, root)
    assert not other_centroids.hit and not other_k.hit
    assert len({first.entry, other_centroids.entry, other_k.entry}) == 3
    path = tone_corpus[0].path
    stat = os.stat(path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the audio "changed"
    edited = label_corpus(_tokenizer(seed=0), tone_corpus, root)
    assert not edited.hit and edited.entry != first.entry
    subset = label_corpus(_tokenizer(seed=0), tone_corpus.select([0, 1]), root)
    assert not subset.hit and list(subset) == tone_corpus.ids[:2]


def test_damaged_entry_is_recomputed(tone_corpus, tmp_path):
    root = tmp_path / "cache"
    labels = label_corpus(_tokenizer(), tone_corpus, root)
    expected = {utt_id: np.array(units) for utt_id, units in labels.items()}
    del labels.units
    (labels.entry / "units.bin").write_bytes(b"\x00")
    with pytest.raises(ValueError, match=r"units.bin: expected \d+ int16 units"):
        UnitLabels(labels.entry)
    repaired = label_corpus(_tokenizer(), tone_corpus, root)
    assert not repaired.hit
    for utt_id, units in expected.items():
        np.testing.assert_array_equal(repaired[utt_id], units)
    assert (repaired.entry / "units.bin").stat().st_size == repaired.meta["total_frames"] * 2


def test_an_error_leaves_no_entry_and_no_partial_files(tone_corpus, tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"not audio at all")
    rows = [*tone_corpus, tone_corpus[0].__class__(
        id="broken", path=broken, duration=0.5, sample_rate=16000, speaker="s0", split="train",
        labels={"tone": "low"},
    )]  # fmt: skip
    root = tmp_path / "cache"
    with pytest.raises(AudioError, match=r"broken\.wav"):
        label_corpus(_tokenizer(), Manifest(rows), root, max_batch_seconds=1.0)
    assert [p for p in root.rglob("*") if p.is_file() or p.name.endswith(".partial")] == []


def test_units_dtype_widens_for_large_inventories():
    assert units_dtype(500) == np.int16 and units_dtype(40000) == np.int32


def test_units_fit_and_label_report_progress_on_a_log_stream(tone_corpus, tmp_path, monkeypatch, capsys):
    from speechssl.models.kmeans import KMeansConfig, fit_units

    monkeypatch.setattr("speechssl.progress.LOG_INTERVAL_S", 0.0)  # a line on every update
    features = UnitFeatures(UnitFeatureConfig(source="mfcc", deltas=False))
    tokenizer, _ = fit_units(features, tone_corpus, KMeansConfig(k=3, max_frames=60, backend="sklearn"))
    label_corpus(tokenizer, tone_corpus, tmp_path / "cache", max_batch_seconds=1.5)
    err = capsys.readouterr().err
    assert "units fit: sampling frames: " in err and "units label: 12/12 utterances (100%)" in err
    assert "units label: " in err and "ETA" in err and "done in" in err
