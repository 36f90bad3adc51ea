"""lhotse CutSets read as manifests: segment rows, exact segment audio, skipped sources, pretraining, shards."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import soundfile
import torch

lhotse = pytest.importorskip("lhotse")
from lhotse import CutSet, Recording, RecordingSet, SupervisionSegment, SupervisionSet  # noqa: E402
from lhotse.audio import AudioSource  # noqa: E402

from speechssl import cli  # noqa: E402
from speechssl.data import BadFileSummary, detect_corpus, load_corpus  # noqa: E402
from speechssl.data.audio import load_audio  # noqa: E402
from speechssl.data.dataset import AudioDataset  # noqa: E402
from speechssl.data.manifest import Manifest  # noqa: E402
from speechssl.data.shards import ShardIndex, ShardLoaderData, ShardStream  # noqa: E402

SAMPLE_RATE = 16000
# recording -> its supervisions (start, duration, speaker, text)
SEGMENTS = {
    "rec0": [(0.0, 1.25, "alice", "hello there"), (1.25, 1.5, "bob", "general kenobi")],
    "rec1": [(0.5, 1.0, "carol", "one two"), (1.75, 1.0, "carol", "three")],
}


def write_cuts(folder, extra_cuts=()) -> tuple:
    """Two 3 s mono WAVs cut into their supervisions with lhotse's API, saved as ``cuts.jsonl.gz``;
    plus a URL-sourced cut and a stereo cut, which the loader must skip."""
    rng = np.random.default_rng(0)
    recordings, supervisions = [], []
    for name, segments in SEGMENTS.items():
        path = folder / f"{name}.wav"
        soundfile.write(path, (0.1 * rng.standard_normal(3 * SAMPLE_RATE)).astype(np.float32), SAMPLE_RATE)
        recordings.append(Recording.from_file(path, recording_id=name))
        for index, (start, duration, speaker, text) in enumerate(segments):
            custom = {"split": "valid", "emotion": "happy"} if (name, index) == ("rec1", 1) else None
            supervisions.append(
                SupervisionSegment(
                    id=f"{name}-{index}",
                    recording_id=name,
                    start=start,
                    duration=duration,
                    channel=0,
                    text=text,
                    speaker=speaker,
                    language="English",
                    gender="f" if speaker != "bob" else "m",
                    custom=custom,
                )
            )
    trimmed = (
        CutSet.from_manifests(
            recordings=RecordingSet.from_recordings(recordings),
            supervisions=SupervisionSet.from_segments(supervisions),
        )
        .trim_to_supervisions(keep_overlapping=False)
        .to_eager()
    )
    remote = Recording(
        id="remote",
        sources=[AudioSource(type="url", channels=[0], source="https://example.invalid/remote.wav")],
        sampling_rate=SAMPLE_RATE,
        num_samples=SAMPLE_RATE,
        duration=1.0,
    )
    stereo_path = folder / "stereo.wav"
    soundfile.write(stereo_path, np.zeros((SAMPLE_RATE, 2), np.float32), SAMPLE_RATE)
    stereo = Recording.from_file(stereo_path, recording_id="stereo")
    cuts = CutSet.from_cuts([*trimmed, remote.to_cut(), stereo.to_cut(), *extra_cuts])
    path = folder / "cuts.jsonl.gz"
    cuts.to_file(path)
    return path, trimmed


def test_each_file_cut_is_a_segment_row_and_other_sources_are_skipped_and_listed(tmp_path):
    path, trimmed = write_cuts(tmp_path)
    assert detect_corpus(path) == "lhotse"
    bad = BadFileSummary()
    manifest = load_corpus("lhotse", path, bad)

    assert [row.id for row in manifest] == [cut.id for cut in trimmed]
    assert manifest.label_columns == ("transcript", "language", "gender", "emotion")
    expected = [(name, *segment) for name, segments in SEGMENTS.items() for segment in segments]
    for row, (name, start, duration, speaker, text) in zip(manifest, expected, strict=True):
        assert row.path == (tmp_path / f"{name}.wav").absolute()
        assert (row.start, row.end) == pytest.approx((start, start + duration))
        assert row.duration == pytest.approx(duration)
        assert row.sample_rate == SAMPLE_RATE
        assert (row.speaker, row.labels["transcript"], row.labels["language"]) == (speaker, text, "English")
    assert [row.split for row in manifest] == ["train", "train", "train", "valid"]
    assert [row.labels["emotion"] for row in manifest] == ["", "", "", "happy"]
    assert [row.labels["gender"] for row in manifest] == ["f", "m", "f", "f"]

    assert bad.count == 2
    reasons = {file.id: file.reason for file in bad}
    assert sorted(reasons.values()) == [
        "MultiCut is not supported (expected a single-channel MonoCut)",
        "recording remote: source type 'url' is not read (expected 'file')",
    ]
    assert sorted(file.path for file in bad) == [
        str(tmp_path / "stereo.wav"),
        "https://example.invalid/remote.wav",
    ]
    assert "2 bad file(s) skipped" in bad.format()

    assert {row.split for row in load_corpus("lhotse", path, BadFileSummary(), split="test")} == {
        "test",
        "valid",
    }
    with pytest.raises(ValueError, match=r"cuts\.jsonl\.gz: cut .*source type 'url'"):
        load_corpus("lhotse", path)

    broken = tmp_path / "broken.jsonl"
    broken.write_text(gzip.decompress(path.read_bytes()).decode() + '{"id": "x", "nonsense": 1}\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl: not a readable lhotse manifest"):
        load_corpus("lhotse", broken, BadFileSummary())


def test_a_row_reads_exactly_its_cut_segment(tmp_path):
    path, trimmed = write_cuts(tmp_path)
    manifest = load_corpus("lhotse", path, BadFileSummary())
    dataset = AudioDataset(manifest, SAMPLE_RATE)
    for index, row in enumerate(manifest):
        whole, rate = soundfile.read(row.path, dtype="float32")
        expected = whole[round(row.start * rate) : round(row.end * rate)]
        assert torch.equal(dataset[index].waveform, torch.from_numpy(expected)), row.id
        # the same samples lhotse itself loads for the cut
        assert np.array_equal(trimmed[row.id].load_audio()[0], expected), row.id


def test_missing_file_and_a_cut_past_its_file_end_are_bad(tmp_path):
    path, trimmed = write_cuts(tmp_path)
    past_end = trimmed[0].recording.to_cut().truncate(duration=3.0)
    past_end.id, past_end.duration = "past-end", 3.5
    unsupervised = trimmed[0].recording.to_cut()
    unsupervised.id = "whole-rec0"
    path, trimmed = write_cuts(tmp_path, [past_end, unsupervised])
    (tmp_path / "rec1.wav").unlink()
    bad = BadFileSummary()
    manifest = load_corpus("lhotse", path, bad)
    assert [row.id for row in manifest] == [*[cut.id for cut in trimmed][:2], "whole-rec0"]
    whole = manifest[2]
    assert (whole.speaker, whole.labels["transcript"], whole.start, whole.end) == ("whole-rec0", "", 0.0, 3.0)
    reasons = [file.reason for file in bad]
    assert sum("past the file's 3.000 s" in reason for reason in reasons) == 1
    assert sum(file.path.endswith("rec1.wav") for file in bad) == 1  # recorded once for its two cuts
    assert bad.count == 4


def test_data_manifest_detects_a_cutset_and_the_manifest_shards_by_segment(tmp_path, capsys):
    path, _ = write_cuts(tmp_path)
    assert cli.main(["data", "manifest", str(path), "-o", str(tmp_path / "m.csv")]) == 0
    manifest = Manifest.load(tmp_path / "m.csv")
    assert manifest == load_corpus("lhotse", path, BadFileSummary())
    assert "2 bad file(s) skipped" in capsys.readouterr().out
    manifest.save(tmp_path / "m.jsonl")
    assert detect_corpus(tmp_path / "m.jsonl") == "manifest"  # speechssl's own JSON Lines are not cuts

    assert cli.main(["data", "shard", str(tmp_path / "m.csv"), "-o", str(tmp_path / "shards")]) == 0
    index = ShardIndex.load(tmp_path / "shards")
    assert sorted(i for ids in index.ids for i in ids) == sorted(row.id for row in manifest)
    stream = ShardStream(index, SAMPLE_RATE, None, 100.0)
    found = {}
    for batch in ShardLoaderData(stream, 0).loader_for_epoch(0, 0):
        for row, identifier in enumerate(batch.ids):
            found[identifier] = batch.waveforms[row, : batch.lengths[row]]
    for row in manifest:
        whole = load_audio(row.path, SAMPLE_RATE)
        assert torch.equal(
            found[row.id],
            torch.from_numpy(whole[round(row.start * SAMPLE_RATE) : round(row.end * SAMPLE_RATE)]),
        )


def test_pretraining_runs_on_a_cutset(tmp_path, tiny_pretrain_overrides):
    from speechssl.train import load_pretrain_config, pretrain

    path, _ = write_cuts(tmp_path)
    overrides = [*tiny_pretrain_overrides, "data.corpus=lhotse", f"data.root={path}", "train.max_steps=2"]
    config = load_pretrain_config(None, overrides, method="barlow_twins")
    with pytest.warns(UserWarning, match=r"2 bad file\(s\) skipped"):
        result = pretrain(config, tmp_path / "run")
    assert result.step == 2 and np.isfinite(result.loss)
    listed = (tmp_path / "run" / "bad_files.json").read_text()
    assert "remote.wav" in listed and "stereo.wav" in listed
