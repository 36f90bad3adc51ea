"""WebDataset shards: writing, exactly-once streaming under two ranks x two workers, exact resume."""

from __future__ import annotations

import json
import multiprocessing
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from distributed_helpers import spawn_ranks
from preemption import assert_same_weights, preempted_at

from speechssl import cli, distributed
from speechssl.data.audio import AudioError
from speechssl.data.manifest import Manifest, Utterance
from speechssl.data.shards import (
    INDEX,
    ShardIndex,
    ShardLoaderData,
    ShardStream,
    interleave,
    parse_size,
    plan_epoch,
    write_shards,
)
from speechssl.models.checkpoint import find_latest

SAMPLE_RATE = 16000


def tone_manifest(folder: Path, count: int, seed: int = 0) -> Manifest:
    """``count`` tone WAVs of 0.3-1 s (alternating WAV and FLAC) and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        duration = round(float(rng.uniform(0.3, 1.0)), 3)
        samples = round(duration * SAMPLE_RATE)
        wave = 0.3 * np.sin(2 * np.pi * (100 + 10 * index) * np.arange(samples) / SAMPLE_RATE)
        path = folder / f"utt{index:05d}.{'flac' if index % 2 else 'wav'}"
        soundfile.write(path, wave.astype(np.float32), SAMPLE_RATE)
        rows.append(
            Utterance(
                f"u{index}",
                path,
                samples / SAMPLE_RATE,
                SAMPLE_RATE,
                f"s{index % 3}",
                "train",
                {"k": str(index)},
            )
        )
    return Manifest(rows)


def test_shard_writer_round_trip_keeps_bytes_rows_and_index(tmp_path):
    manifest = tone_manifest(tmp_path / "wavs", 12)
    index_file = write_shards(manifest, tmp_path / "shards", shard_size=60_000)

    index = ShardIndex.load(tmp_path / "shards")
    assert index_file == tmp_path / "shards" / INDEX and len(index.names) > 2
    assert [i for ids in index.ids for i in ids] == manifest.ids
    data = json.loads(index_file.read_text())
    assert data["manifest_digest"] == manifest.digest()
    assert data["total_duration"] == pytest.approx(float(manifest.durations.sum()))
    assert sum(shard["count"] for shard in data["shards"]) == 12
    found = {}
    for name in index.names:
        with tarfile.open(tmp_path / "shards" / name) as archive:
            for member in archive.getmembers():
                found[member.name] = archive.extractfile(member).read()
    for position, row in enumerate(manifest):
        extension = row.path.suffix.lstrip(".")
        assert found[f"{position:09d}.{extension}"] == row.path.read_bytes()  # as stored, not re-encoded
        record = json.loads(found[f"{position:09d}.json"])
        assert (record["id"], record["speaker"], record["labels"]) == (row.id, row.speaker, dict(row.labels))
    assert not [p for p in (tmp_path / "shards").iterdir() if p.name.startswith(".")]


def test_a_killed_writer_leaves_no_index_and_no_half_shard(tmp_path, monkeypatch):
    import speechssl.data.shards as shards

    manifest = tone_manifest(tmp_path / "wavs", 8)
    write_shards(manifest, tmp_path / "shards", shard_size=40_000)
    original, calls = shards._write_tar, []

    def killed_in_third_shard(path, samples):
        calls.append(path)
        if len(calls) == 3:
            path.write_bytes(b"half a tar")
            raise KeyboardInterrupt
        original(path, samples)

    monkeypatch.setattr(shards, "_write_tar", killed_in_third_shard)
    with pytest.raises(KeyboardInterrupt):
        write_shards(manifest, tmp_path / "shards", shard_size=40_000)
    names = sorted(p.name for p in (tmp_path / "shards").iterdir())
    assert INDEX not in names and all(name.endswith(".tar") for name in names)
    for name in names:
        with tarfile.open(tmp_path / "shards" / name) as archive:
            assert archive.getmembers()
    with pytest.raises(ValueError, match="shard index not found"):
        ShardIndex.load(tmp_path / "shards")


def test_parse_size():
    assert parse_size("256MB") == 256 * 1024**2 and parse_size("1gb") == 1024**3 and parse_size("500") == 500
    with pytest.raises(ValueError, match="shard size"):
        parse_size("lots")


def test_plan_gives_every_sample_once_and_every_rank_the_same_batches(tmp_path):
    manifest = tone_manifest(tmp_path / "wavs", 37)
    write_shards(manifest, tmp_path / "shards", shard_size=70_000)  # shards of uneven counts
    index = ShardIndex.load(tmp_path / "shards")
    for epoch in range(3):
        plan = plan_epoch(index, epoch, 0, ranks=2, workers=2, max_batch_seconds=3.0, crop_seconds=None,
                          shuffle_buffer=5)  # fmt: skip
        flat = [p for rank in plan.batches for worker in rank for batch in worker for p in batch]
        assert sorted(flat) == list(range(37))
        assert len({sum(len(w) for w in rank) for rank in plan.batches}) == 1
        durations = np.concatenate([index.durations[s] for s in plan.shard_order])
        for rank in plan.batches:
            for worker in rank:
                assert all(len(b) * durations[b].max() <= 3.0 for b in worker)
    with pytest.raises(ValueError, match="max_batch_seconds: expected at least 2 x the longest"):
        plan_epoch(
            index, 0, 0, ranks=2, workers=2, max_batch_seconds=1.2, crop_seconds=None, min_batch_size=2
        )
    pairs = plan_epoch(
        index, 0, 0, ranks=2, workers=2, max_batch_seconds=2.0, crop_seconds=None, min_batch_size=2
    )
    flat = [p for rank in pairs.batches for worker in rank for batch in worker for p in batch]
    assert sorted(flat) == list(range(37))  # Barlow Twins' two-item minimum keeps every sample
    assert all(len(batch) >= 2 for rank in pairs.batches for worker in rank for batch in worker)
    first = plan_epoch(index, 0, 0, 2, 2, 3.0, None, shuffle_buffer=5)
    other = plan_epoch(index, 1, 0, 2, 2, 3.0, None, shuffle_buffer=5)
    assert first.batches != other.batches


def test_interleave_takes_one_batch_of_each_consumer_in_turn():
    assert interleave([[[1], [2], [3]], [[4]], [[5], [6]]]) == [[1], [4], [5], [2], [6], [3]]
    assert interleave([]) == []


def _stream_worker(rank: int, world_size: int, folder: Path, out: Path) -> None:
    # torchrun's ranks are fresh interpreters whose DataLoader workers fork; mp.spawn's children
    # inherit "spawn", which costs seconds per DataLoader iterator.
    multiprocessing.set_start_method("fork", force=True)
    distributed.setup_from_env()
    try:
        stream = ShardStream(ShardIndex.load(folder), SAMPLE_RATE, 0.5, 1.5, seed=3, num_replicas=world_size,
                             rank=rank, num_workers=2, shuffle_buffer=4)  # fmt: skip
        data = ShardLoaderData(stream, num_workers=2)
        epochs = {}
        for epoch in range(2):
            batches = list(data.loader_for_epoch(epoch, 0))
            epochs[epoch] = {
                "batches": [b.ids for b in batches],
                "lengths": [b.lengths.tolist() for b in batches],
            }
        resumed = {start: [batch.ids for batch in data.loader_for_epoch(1, start)] for start in (1, 3)}
        (out / f"rank{rank}.json").write_text(json.dumps({"epochs": epochs, "resumed": resumed}))
    finally:
        distributed.cleanup()


def test_two_ranks_two_workers_see_every_sample_once_and_resume_exactly(tmp_path):
    manifest = tone_manifest(tmp_path / "wavs", 29)
    write_shards(manifest, tmp_path / "shards", shard_size=50_000)
    spawn_ranks(_stream_worker, tmp_path / "shards", tmp_path, world_size=2)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]

    for epoch in ("0", "1"):
        seen = Counter(i for rank in ranks for batch in rank["epochs"][epoch]["batches"] for i in batch)
        assert seen == Counter(manifest.ids)  # exactly once per epoch
        assert len(ranks[0]["epochs"][epoch]["batches"]) == len(ranks[1]["epochs"][epoch]["batches"])
        assert all(len(batch) for rank in ranks for batch in rank["epochs"][epoch]["batches"])
        assert all(max(x) <= 0.5 * SAMPLE_RATE for rank in ranks for x in rank["epochs"][epoch]["lengths"])
    assert ranks[0]["epochs"]["0"]["batches"] != ranks[0]["epochs"]["1"]["batches"]
    for rank in ranks:  # resuming at batch 1 or 3 of epoch 1 gives that epoch's remaining batches
        assert len(rank["epochs"]["1"]["batches"]) > 4
        for start in (1, 3):
            assert rank["resumed"][str(start)] == rank["epochs"]["1"]["batches"][start:]


def test_bad_sample_is_skipped_or_named(tmp_path):
    manifest = tone_manifest(tmp_path / "wavs", 6)
    manifest[2].path.write_bytes(b"RIFF not audio")
    write_shards(manifest, tmp_path / "shards")
    index = ShardIndex.load(tmp_path / "shards")
    with pytest.warns(UserWarning, match="utt00002"):
        ids = [i for b in ShardLoaderData(ShardStream(index, SAMPLE_RATE, None, 10.0), 0).loader_for_epoch(0, 0)
               for i in b.ids]  # fmt: skip
    assert sorted(ids) == sorted(set(manifest.ids) - {"u2"})
    strict = ShardLoaderData(ShardStream(index, SAMPLE_RATE, None, 10.0, skip_bad=False), 0)
    with pytest.raises(AudioError, match=r"utt00002\.wav"):
        list(strict.loader_for_epoch(0, 0))


def test_pretrain_on_shards_resumes_bit_identically_through_the_cli(
    tmp_path, monkeypatch, tiny_pretrain_overrides
):
    manifest = tone_manifest(tmp_path / "wavs", 24)
    manifest.save(tmp_path / "manifest.csv")
    assert cli.main(["data", "shard", str(tmp_path / "manifest.csv"), "-o", str(tmp_path / "shards"),
                     "--shard-size", "60kB"]) == 0  # fmt: skip
    overrides = [*tiny_pretrain_overrides, "data.corpus=shards", f"data.root={tmp_path / 'shards'}",
                 "data.num_workers=2", "data.max_batch_seconds=3.0", "train.max_steps=5",
                 "train.checkpoint_every=2"]  # fmt: skip
    base = ["pretrain", "--method", "barlow_twins", *overrides]
    assert cli.main([*base[:3], "--run-dir", str(tmp_path / "straight"), *base[3:]]) == 0

    with preempted_at(monkeypatch, ShardLoaderData, 4):
        cli.main([*base[:3], "--run-dir", str(tmp_path / "resumed"), *base[3:]])
    assert find_latest(tmp_path / "resumed").name == "step_00000002"
    assert cli.main([*base[:3], "--run-dir", str(tmp_path / "resumed"), "--resume", *base[3:]]) == 0

    assert find_latest(tmp_path / "resumed").name == "step_00000005"
    assert_same_weights(find_latest(tmp_path / "resumed"), find_latest(tmp_path / "straight"))


def test_segment_offsets_read_only_their_segment_in_files_and_shards(tmp_path):
    from speechssl.data.audio import load_audio
    from speechssl.data.dataset import AudioDataset

    rng = np.random.default_rng(0)
    long = tmp_path / "long.flac"
    soundfile.write(long, (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
    other = tone_manifest(tmp_path / "wavs", 1)[0]
    segments = [(0.0, 1.0), (1.0, 2.5), (2.5, 3.0)]
    rows = [
        Utterance(f"seg{i}", long, end - start, SAMPLE_RATE, "s", "train", {"k": "x"}, start=start, end=end)
        for i, (start, end) in enumerate(segments)
    ]
    manifest = Manifest([*rows, other])
    for name in ("m.csv", "m.jsonl"):
        manifest.save(tmp_path / name)
        assert Manifest.load(tmp_path / name) == manifest
    assert manifest.columns[6:8] == ("start", "end")
    assert manifest.digest() != Manifest([*rows[:2], other]).digest()

    whole = load_audio(long, SAMPLE_RATE)
    dataset = AudioDataset(manifest, SAMPLE_RATE)
    for i, (start, end) in enumerate(segments):
        expected = whole[round(start * SAMPLE_RATE) : round(end * SAMPLE_RATE)]
        assert torch.equal(dataset[i].waveform, torch.from_numpy(expected))
    assert torch.equal(dataset[3].waveform, torch.from_numpy(load_audio(other.path, SAMPLE_RATE)))

    write_shards(manifest, tmp_path / "shards")
    with tarfile.open(tmp_path / "shards" / "shard-000000.tar") as archive:
        audio_members = [m.name for m in archive.getmembers() if not m.name.endswith(".json")]
    assert audio_members == ["000000000.flac", "000000003.wav"]  # the recording is stored once
    stream = ShardStream(ShardIndex.load(tmp_path / "shards"), SAMPLE_RATE, None, 100.0)
    found = {}
    for batch in ShardLoaderData(stream, 0).loader_for_epoch(0, 0):
        for row, identifier in enumerate(batch.ids):
            found[identifier] = batch.waveforms[row, : batch.lengths[row]]
    for i in range(4):
        assert torch.equal(found[manifest[i].id], dataset[i].waveform), manifest[i].id
    with pytest.raises(ValueError, match="start and end"):
        Utterance("bad", long, 1.0, SAMPLE_RATE, "s", "train", start=1.0)
