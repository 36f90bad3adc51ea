"""AudioDataset crops, collate, bad-file handling and the DataLoader (worker-count independence)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechssl.data.audio import AudioError, BadFile
from speechssl.data.corpora import load_corpus
from speechssl.data.dataset import (
    AudioDataset,
    AudioItem,
    build_dataloader,
    collate_audio,
    crop_offset,
    scan_bad_files,
)
from speechssl.data.manifest import Manifest, Utterance
from speechssl.data.sampler import DurationBatchSampler


@pytest.fixture
def manifest(tmp_path, write_audio) -> Manifest:
    """Twelve files of 0.3–2.5 s at 8 and 16 kHz, labelled by folder."""
    for i, seconds in enumerate(np.linspace(0.3, 2.5, 12)):
        write_audio(
            tmp_path / "audio" / f"class{i % 3}" / f"f{i:02d}.wav",
            seconds=float(seconds),
            sample_rate=(8000, 16000)[i % 2],
            frequency=200.0 + 50 * i,
        )
    return load_corpus("folder", tmp_path / "audio", label_column="keyword")


def test_items_are_whole_resampled_utterances(manifest):
    dataset = AudioDataset(manifest)
    assert len(dataset) == 12
    item = dataset[0]
    assert isinstance(item, AudioItem) and item.id == manifest[0].id
    assert item.waveform.dtype == torch.float32 and item.waveform.dim() == 1
    assert abs(item.waveform.shape[0] - round(manifest[0].duration * 16000)) <= 1
    assert item.labels == {"speaker": "unknown", "keyword": manifest[0].labels["keyword"]}


def test_crops_have_the_crop_length_and_are_deterministic(manifest):
    dataset = AudioDataset(manifest, crop_seconds=1.0, seed=4)
    lengths = [dataset[i].waveform.shape[0] for i in range(len(dataset))]
    for row, length in zip(manifest, lengths, strict=True):
        assert length == (16000 if row.duration >= 1.0 else round(row.duration * 16000))
    long_index = len(manifest) - 1
    again = AudioDataset(manifest, crop_seconds=1.0, seed=4)
    assert torch.equal(dataset[long_index].waveform, again[long_index].waveform)
    first_epoch = dataset[long_index].waveform
    dataset.set_epoch(1)
    assert not torch.equal(dataset[long_index].waveform, first_epoch)
    full = AudioDataset(manifest)[long_index].waveform
    offset = round(crop_offset(manifest[long_index].duration, 1.0, 4, 1, long_index) * 16000)
    torch.testing.assert_close(dataset[long_index].waveform, full[offset : offset + 16000], atol=2e-3, rtol=0)


def test_crop_offset_is_uniform_within_range():
    offsets = np.array([crop_offset(3.0, 1.0, seed=0, epoch=0, index=i) for i in range(2000)])
    assert offsets.min() >= 0 and offsets.max() <= 2.0 and abs(offsets.mean() - 1.0) < 0.05
    assert crop_offset(0.5, 1.0, seed=0, epoch=0, index=0) == 0.0
    assert crop_offset(3.0, 1.0, 0, 0, 5) == crop_offset(3.0, 1.0, 0, 0, 5) != crop_offset(3.0, 1.0, 0, 1, 5)


def test_collate_pads_with_zeros_and_keeps_labels():
    items = [
        AudioItem("a", torch.ones(3), {"speaker": "s1", "keyword": "yes"}),
        BadFile("bad", "/x/bad.wav", "file not found"),
        AudioItem("b", torch.full((5,), 2.0), {"speaker": "s2", "keyword": "no"}),
    ]
    with pytest.warns(UserWarning, match=r"skipped bad audio file /x/bad.wav \(bad\): file not found"):
        batch = collate_audio(items)
    assert batch.waveforms.shape == (2, 5) and batch.lengths.dtype == torch.int64
    assert batch.lengths.tolist() == [3, 5] and batch.ids == ["a", "b"]
    assert batch.waveforms[0].tolist() == [1, 1, 1, 0, 0]
    assert batch.labels == {"speaker": ["s1", "s2"], "keyword": ["yes", "no"]}
    assert batch.padding_mask[0].tolist() == [False, False, False, True, True]
    with pytest.warns(UserWarning):
        empty = collate_audio([BadFile("bad", "/x/bad.wav", "gone")])
    assert len(empty) == 0 and empty.waveforms.shape == (0, 0)


def loader_batches(manifest, num_workers, epoch):
    dataset = AudioDataset(manifest, crop_seconds=1.0, seed=11)
    sampler = DurationBatchSampler(np.minimum(manifest.durations, 1.0), 3.0, seed=11)
    dataset.set_epoch(epoch)
    sampler.set_epoch(epoch)
    return list(build_dataloader(dataset, sampler, num_workers=num_workers))


def test_batches_do_not_depend_on_the_number_of_workers(manifest):
    for epoch in (0, 1):
        serial = loader_batches(manifest, 0, epoch)
        parallel = loader_batches(manifest, 2, epoch)
        assert len(serial) == len(parallel) > 1
        for a, b in zip(serial, parallel, strict=True):
            assert a.ids == b.ids and a.labels == b.labels
            assert torch.equal(a.lengths, b.lengths) and torch.equal(a.waveforms, b.waveforms)
        assert all(batch.waveforms.shape[1] <= 16000 for batch in serial)
    assert [b.ids for b in loader_batches(manifest, 0, 0)] != [b.ids for b in loader_batches(manifest, 0, 1)]


@pytest.fixture
def mixed_manifest(bad_files) -> Manifest:
    rows = [
        Utterance(kind, path, 0.3, 16000, "s", "train", {"kind": kind}) for kind, path in bad_files.items()
    ]
    return Manifest(rows)


def test_bad_files_raise_naming_the_file(mixed_manifest, bad_files):
    dataset = AudioDataset(mixed_manifest)
    assert isinstance(dataset[0], AudioItem)
    for index in range(1, len(mixed_manifest)):
        with pytest.raises(AudioError, match=mixed_manifest[index].path.name):
            dataset[index]


def test_skip_bad_drops_and_lists_bad_files(mixed_manifest):
    bad_ids = ["zero_bytes", "garbage", "empty", "nan", "missing"]
    summary = scan_bad_files(mixed_manifest)
    assert [bad.id for bad in summary] == bad_ids and summary.count == 5
    assert "non-finite" in summary.files[3].reason and "file not found" in summary.files[4].reason
    headers_only = scan_bad_files(mixed_manifest, decode=False)
    assert [bad.id for bad in headers_only] == [
        "zero_bytes",
        "garbage",
        "empty",
        "missing",
    ]  # NaN needs decoding

    dataset = AudioDataset(mixed_manifest, skip_bad=True)
    items = [dataset[i] for i in range(len(dataset))]
    assert [item.id for item in items if isinstance(item, BadFile)] == bad_ids
    sampler = DurationBatchSampler(mixed_manifest.durations, 100.0, shuffle=False)
    with pytest.warns(UserWarning, match="skipped bad audio file"):
        batches = list(build_dataloader(dataset, sampler, num_workers=0))
    assert [batch.ids for batch in batches] == [["good"]]
    clean = mixed_manifest.exclude_ids(summary.ids)
    assert clean.ids == ["good"]


def test_invalid_options(manifest):
    with pytest.raises(ValueError, match="crop_seconds must be > 0"):
        AudioDataset(manifest, crop_seconds=0.0)
    with pytest.raises(ValueError, match="num_workers must be >= 0"):
        build_dataloader(AudioDataset(manifest), DurationBatchSampler([1.0], 2.0), num_workers=-1)
    with pytest.raises(ValueError, match="workers must be >= 1"):
        scan_bad_files(manifest, workers=0)
