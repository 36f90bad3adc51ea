"""Corpus loaders on the shared real corpora (counts from its README) and on tiny generated fixtures."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from speechssl.data.audio import AudioError, BadFileSummary, load_audio
from speechssl.data.corpora import available_corpora, detect_corpus, load_corpus
from speechssl.data.corpora.common import PendingUtterance, probe_utterances
from speechssl.data.manifest import Manifest


def speakers_by_split(manifest: Manifest) -> dict[str, set[str]]:
    return {split: set(manifest.filter(split=split).column("speaker")) for split in manifest.counts("split")}


def test_registry_names():
    assert set(available_corpora()) == {
        "fsdd",
        "librispeech",
        "ravdess",
        "arabic_speech_commands",
        "fluent_speech_commands",
        "speech_commands",
        "speech_commands_superb",
        "voxceleb1",
        "iemocap",
        "folder",
        "pattern",
        "manifest",
        "voxceleb1_verification",
        "quesst14",
        "lhotse",
    }


def test_load_corpus_errors(tmp_path):
    with pytest.raises(ValueError, match=r"unknown corpus 'timit' \(expected one of: fsdd, librispeech"):
        load_corpus("timit", tmp_path)
    with pytest.raises(FileNotFoundError, match=r"corpus 'fsdd': .*nowhere does not exist"):
        load_corpus("fsdd", tmp_path / "nowhere")
    with pytest.raises(
        ValueError,
        match=r"corpus 'librispeech' has no option 'subset' \(options: subsets, valid_fraction, test_fraction, split_by\)",
    ):
        load_corpus("librispeech", tmp_path, subset="dev-clean")
    with pytest.raises(ValueError, match=r"corpus 'fsdd' has no option 'speakers' \(options: none\)"):
        load_corpus("fsdd", tmp_path, speakers=["theo"])


def test_fsdd_counts_and_splits(shared_data):
    root = shared_data("fsdd")
    manifest = load_corpus("fsdd", root)
    assert len(manifest) == 3000
    assert len(manifest.counts("speaker")) == 6
    assert manifest.counts("keyword") == {str(d): 300 for d in range(10)}
    assert manifest.counts("split") == {"test": 300, "train": 2400, "valid": 300}
    assert set(manifest.column("gender")) == {"m"}
    assert all(int(row.id.split("_")[2]) < 5 for row in manifest.filter(split="test"))
    assert all(len(speakers) == 6 for speakers in speakers_by_split(manifest).values())
    assert set(manifest.column("sample_rate")) == {8000}
    assert load_corpus("fsdd", root / "recordings") == manifest


def test_fsdd_rejects_foreign_names(tmp_path, write_audio):
    write_audio(tmp_path / "recordings" / "hello.wav")
    with pytest.raises(ValueError, match=r"hello.wav: expected a name like"):
        load_corpus("fsdd", tmp_path)


def test_mini_librispeech_counts_and_splits(shared_data):
    root = shared_data("mini_librispeech")
    manifest = load_corpus("librispeech", root)
    assert len(manifest) == 392
    speakers = manifest.counts("speaker")
    assert len(speakers) == 28 and set(speakers.values()) == {14}
    genders = {row.speaker: row.labels["gender"] for row in manifest}
    assert sorted(genders.values()).count("f") == 16 and sorted(genders.values()).count("m") == 12
    assert set(manifest.column("subset")) == {"train-clean-5"}
    assert all(row.labels["transcript"] and row.labels["transcript"].isupper() for row in manifest)
    assert all(row.id.startswith(f"{row.speaker}-{row.labels['chapter']}-") for row in manifest)
    assert manifest.counts("split") == {"test": 56, "train": 280, "valid": 56}
    assert all(len(s) == 28 for s in speakers_by_split(manifest).values())  # speaker ID works
    # Any of the three roots gives the same manifest.
    assert load_corpus("librispeech", root / "LibriSpeech") == manifest
    assert load_corpus("librispeech", root / "LibriSpeech" / "train-clean-5") == manifest
    assert load_corpus("librispeech", root, subsets=["train-clean-5"]) == manifest
    with pytest.raises(FileNotFoundError, match="subset 'dev-clean' not found"):
        load_corpus("librispeech", root, subsets=["dev-clean"])


def test_librispeech_fixture_without_speakers_file(tmp_path, write_audio):
    chapter = tmp_path / "dev-clean" / "84" / "121123"
    for n in range(3):
        write_audio(chapter / f"84-121123-000{n}.flac", seconds=0.2)
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO\n84-121123-0001 COME\n84-121123-0002 STAY HERE\n84-121123-0003 MISSING\n"
    )
    with pytest.raises(FileNotFoundError, match=r"trans.txt, line 4: no audio file 84-121123-0003.flac"):
        load_corpus("librispeech", tmp_path)
    (chapter / "84-121123.trans.txt").write_text(
        "84-121123-0000 GO\n84-121123-0001 COME\n84-121123-0002 STAY\n"
    )
    manifest = load_corpus("librispeech", tmp_path / "dev-clean", valid_fraction=0.34, test_fraction=0.34)
    assert "gender" not in manifest.label_columns
    assert manifest.counts("split") == {"test": 1, "train": 1, "valid": 1}
    assert manifest.column("transcript") == ["GO", "COME", "STAY"]


def test_ravdess_counts_and_actor_disjoint_splits(shared_data):
    manifest = load_corpus("ravdess", shared_data("ravdess"))
    assert len(manifest) == 1440
    assert len(manifest.counts("speaker")) == 24
    assert len(manifest.counts("emotion")) == 8
    genders = {row.speaker: row.labels["gender"] for row in manifest}
    assert list(genders.values()).count("f") == 12 and list(genders.values()).count("m") == 12
    assert genders["Actor_01"] == "m" and genders["Actor_02"] == "f"
    assert manifest.counts("split") == {"test": 240, "train": 960, "valid": 240}
    by_split = speakers_by_split(manifest)
    assert by_split["train"].isdisjoint(by_split["test"]) and by_split["valid"].isdisjoint(by_split["test"])
    assert set(manifest.filter(emotion="neutral").column("intensity")) == {"normal"}
    row = manifest.filter(emotion="fearful", statement="dogs", actor="12", intensity="normal", repetition="1")
    assert len(row) == 1 and row[0].id == "03-01-06-01-02-01-12"


def test_ravdess_rejects_unknown_codes(tmp_path, write_audio):
    write_audio(tmp_path / "Actor_01" / "03-01-09-01-01-01-01.wav")
    with pytest.raises(ValueError, match=r"emotion code '09' unknown"):
        load_corpus("ravdess", tmp_path)


def test_arabic_speech_commands_counts_and_speaker_disjoint_splits(shared_data):
    start = time.perf_counter()
    manifest = load_corpus("arabic_speech_commands", shared_data("arabic_speech_commands"))
    elapsed = time.perf_counter() - start
    assert elapsed < 15, f"header-only loading of 3600 files took {elapsed:.1f} s"
    assert len(manifest) == 3600
    assert len(manifest.counts("keyword")) == 40
    assert len(manifest.counts("speaker")) == 30
    assert manifest.counts("split") == {"test": 720, "train": 2160, "valid": 720}
    by_split = speakers_by_split(manifest)
    assert not (
        by_split["train"] & by_split["valid"]
        or by_split["train"] & by_split["test"]
        or by_split["valid"] & by_split["test"]
    )
    row = manifest[0]
    assert row.id == f"{row.labels['keyword']}/{row.path.stem}" and row.speaker == row.path.name[:8]
    # Header durations agree with decoding.
    for row in manifest.select(range(0, 3600, 900)):
        assert len(load_audio(row.path, target_sr=None)) / row.sample_rate == pytest.approx(row.duration)


def test_arabic_speech_commands_without_csvs_lists_the_folders(tmp_path, write_audio):
    for keyword in ("left", "right"):
        for speaker in ("00000001", "00000002"):
            write_audio(tmp_path / "dataset" / keyword / f"{speaker}_NO_01.flac", seconds=0.2)
    write_audio(tmp_path / "dataset" / "background_noise" / "noise.wav")
    manifest = load_corpus("arabic_speech_commands", tmp_path)
    assert len(manifest) == 4 and set(manifest.column("split")) == {"train"}
    assert manifest.counts("keyword") == {"left": 2, "right": 2}
    assert manifest.counts("speaker") == {"00000001": 2, "00000002": 2}
    (tmp_path / "train.csv").write_text("file,class\ndataset/left/00000001_NO_01.wav,left\n")  # .wav -> .flac
    (tmp_path / "test.csv").write_text("file,class\ndataset/left/00000009_NO_01.wav,left\n")
    with pytest.warns(UserWarning, match=r"left out: test.csv names 1 \(dataset/left/00000009_NO_01.wav\)"):
        manifest = load_corpus("arabic_speech_commands", tmp_path)
    assert manifest.ids == ["left/00000001_NO_01"] and manifest.column("split") == ["train"]
    (tmp_path / "train.csv").write_text("file,class\ndataset/left/00000007_NO_01.wav,left\n")
    no_file = r"no file named in train.csv, test.csv is under"
    with pytest.raises(FileNotFoundError, match=no_file), pytest.warns(UserWarning, match="left out"):
        load_corpus("arabic_speech_commands", tmp_path)


def test_speech_commands_fixture(tmp_path, write_audio):
    files = [
        "yes/0a7c2a8d_nohash_0.wav",
        "yes/0a7c2a8d_nohash_1.wav",
        "yes/b00c4c53_nohash_0.wav",
        "no/0a7c2a8d_nohash_0.wav",
        "no/c1d39ce8_nohash_0.wav",
        "no/c1d39ce8_nohash_2.wav",
    ]
    for name in files:
        write_audio(tmp_path / name, seconds=0.25)
    write_audio(tmp_path / "_background_noise_" / "white_noise.wav", seconds=1.0)
    (tmp_path / "validation_list.txt").write_text("yes/b00c4c53_nohash_0.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/c1d39ce8_nohash_0.wav\nno/c1d39ce8_nohash_2.wav\n")
    manifest = load_corpus("speech_commands", tmp_path)
    assert len(manifest) == 6
    assert manifest.counts("split") == {"test": 2, "train": 3, "valid": 1}
    assert manifest.counts("keyword") == {"no": 3, "yes": 3}
    assert manifest.counts("speaker") == {"0a7c2a8d": 3, "b00c4c53": 1, "c1d39ce8": 2}
    assert "no/c1d39ce8_nohash_2" in manifest.ids
    assert manifest[0].duration == pytest.approx(0.25)
    # a subset of the corpus: the lists name files the folder lacks; the files present are used
    listed = [f"no/{n:08x}_nohash_0.wav" for n in range(5)] + ["no/c1d39ce8_nohash_0.wav"]
    (tmp_path / "testing_list.txt").write_text("\n".join(listed) + "\n")
    missing = r"testing_list.txt names 5 \(no/00000000_nohash_0.wav, no/00000001_nohash_0.wav, no/00000002_nohash_0.wav, ...\)"
    with pytest.warns(
        UserWarning, match=rf"corpus 'speech_commands': files not under .*, left out: {missing}$"
    ):
        manifest = load_corpus("speech_commands", tmp_path)
    assert manifest.counts("split") == {"test": 1, "train": 4, "valid": 1}


def test_folder_loader_and_manifest_files(tmp_path, write_audio):
    root = tmp_path / "audio"
    write_audio(root / "cat" / "a.wav", seconds=0.2)
    write_audio(root / "cat" / "deeper" / "b.flac", seconds=0.3, sample_rate=8000)
    write_audio(root / "dog" / "c.WAV", seconds=0.4)
    (root / "notes.txt").write_text("not audio")
    plain = load_corpus("folder", root)
    assert plain.ids == ["cat/a", "cat/deeper/b", "dog/c"]
    assert set(plain.column("speaker")) == {"unknown"} and plain.label_columns == ()
    np.testing.assert_allclose(plain.durations, [0.2, 0.3, 0.4])
    labelled = load_corpus("folder", root, label_column="animal", speaker_from_parent=True, split="test")
    assert labelled.column("animal") == ["cat", "deeper", "dog"]
    assert labelled.column("speaker") == labelled.column("animal") and labelled.counts("split") == {"test": 3}
    labelled.save(tmp_path / "m.jsonl")
    assert load_corpus("folder", tmp_path / "m.jsonl") == labelled
    assert load_corpus("manifest", tmp_path / "m.jsonl") == labelled
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no audio files"):
        load_corpus("folder", tmp_path / "empty")


def test_probe_utterances_keeps_order_and_stops_at_the_first_bad_file(tmp_path, write_audio):
    seconds = [0.1 + 0.01 * ((7 * i) % 20) for i in range(20)]  # not sorted like the names
    paths = [write_audio(tmp_path / f"{i:02d}.wav", seconds=s) for i, s in enumerate(seconds)]
    candidates = [
        PendingUtterance(path, id=path.stem, speaker=f"s{i % 3}", split="train", labels={"n": str(i)})
        for i, path in enumerate(paths)
    ]
    rows = probe_utterances(candidates, workers=4)
    assert rows == probe_utterances(candidates, workers=1)
    assert [row.id for row in rows] == [path.stem for path in paths]
    assert [row.labels["n"] for row in rows] == [str(i) for i in range(20)]
    np.testing.assert_allclose([row.duration for row in rows], seconds)
    (tmp_path / "zero.wav").write_bytes(b"")
    broken = [
        *candidates[:5],
        PendingUtterance(tmp_path / "gone.wav", id="gone", speaker="s0", split="train"),
        *candidates[5:],
        PendingUtterance(tmp_path / "zero.wav", id="zero", speaker="s0", split="train"),
    ]
    with pytest.raises(AudioError, match=r"gone\.wav: file not found"):
        probe_utterances(broken, workers=4)
    summary = BadFileSummary()
    assert probe_utterances(broken, summary, workers=4) == rows
    assert [(bad.id, bad.path) for bad in summary] == [
        ("gone", str(tmp_path / "gone.wav")),
        ("zero", str(tmp_path / "zero.wav")),
    ]
    with pytest.raises(ValueError, match="workers must be >= 1, found 0"):
        probe_utterances(candidates, workers=0)


def test_folder_loader_records_bad_headers(broken_folder, tmp_path):
    with pytest.raises(AudioError, match=r"broken/b\.wav: not a readable audio file") as caught:
        load_corpus("folder", broken_folder)
    assert caught.value.path == broken_folder / "b.wav"
    summary = BadFileSummary()
    manifest = load_corpus("folder", broken_folder, bad_files=summary, label_column="group")
    assert manifest.ids == ["a", "c/d", "f"]
    assert manifest.column("group") == ["broken", "c", "broken"]
    np.testing.assert_allclose(manifest.durations, [0.4, 0.2, 0.3])
    assert [(bad.id, bad.path) for bad in summary] == [
        ("b", str(broken_folder / "b.wav")),
        ("c/e", str(broken_folder / "c" / "e.wav")),
        ("e", str(broken_folder / "e.wav")),
    ]
    reasons = [bad.reason for bad in summary]
    assert reasons[0].startswith("not a readable audio file") and reasons[1].startswith("not a readable")
    assert reasons[2] == "empty audio file (0 samples)"
    # A saved manifest is loaded as is, even when a file has gone bad since.
    manifest.save(tmp_path / "m.jsonl")
    (broken_folder / "a.wav").write_bytes(b"")
    untouched = BadFileSummary()
    assert load_corpus("manifest", tmp_path / "m.jsonl", bad_files=untouched) == manifest
    assert load_corpus("folder", tmp_path / "m.jsonl", bad_files=untouched) == manifest
    assert not untouched
    # The good rows, in the order a folder without the bad files gives.
    for path in ("a.wav", "b.wav", "c/e.wav", "e.wav"):
        (broken_folder / path).unlink()
    assert load_corpus("folder", broken_folder, label_column="group").ids == ["c/d", "f"]


def test_fsdd_records_bad_recordings(tmp_path, write_audio):
    recordings = tmp_path / "recordings"
    for name in ("0_theo_0", "0_theo_7", "1_theo_12", "2_lucas_3"):
        write_audio(recordings / f"{name}.wav", seconds=0.2, sample_rate=8000)
    (recordings / "1_theo_5.wav").write_bytes(np.random.default_rng(2).bytes(3000))
    (recordings / "2_lucas_40.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=r"recordings/1_theo_5\.wav: not a readable audio file"):
        load_corpus("fsdd", tmp_path)
    summary = BadFileSummary()
    manifest = load_corpus("fsdd", tmp_path, bad_files=summary)
    assert manifest.ids == ["0_theo_0", "0_theo_7", "1_theo_12", "2_lucas_3"]
    assert manifest.column("split") == ["test", "valid", "train", "test"]
    assert manifest.column("keyword") == ["0", "0", "1", "2"]
    assert set(manifest.column("sample_rate")) == {8000}
    assert [(bad.id, Path(bad.path).name) for bad in summary] == [
        ("1_theo_5", "1_theo_5.wav"),
        ("2_lucas_40", "2_lucas_40.wav"),
    ]
    assert all(bad.reason.startswith("not a readable audio file") for bad in summary)


def test_librispeech_bad_file_leaves_the_other_splits_alone(tmp_path, write_audio):
    chapter = tmp_path / "dev-clean" / "84" / "121123"
    ids = [f"84-121123-000{n}" for n in range(8)]
    for utt in ids:
        write_audio(chapter / f"{utt}.flac", seconds=0.2)
    (chapter / "84-121123.trans.txt").write_text("".join(f"{utt} WORD\n" for utt in ids))
    good = load_corpus("librispeech", tmp_path, valid_fraction=0.25, test_fraction=0.25)
    (chapter / f"{ids[3]}.flac").write_bytes(np.random.default_rng(3).bytes(2000))
    with pytest.raises(AudioError, match=rf"{ids[3]}\.flac: not a readable audio file"):
        load_corpus("librispeech", tmp_path, valid_fraction=0.25, test_fraction=0.25)
    summary = BadFileSummary()
    broken = load_corpus("librispeech", tmp_path, bad_files=summary, valid_fraction=0.25, test_fraction=0.25)
    assert broken == good.exclude_ids({ids[3]})
    assert [bad.id for bad in summary] == [ids[3]]


def test_detect_corpus_on_shared_layouts(shared_data):
    expected = {
        "fsdd": "fsdd",
        "mini_librispeech": "librispeech",
        "ravdess": "ravdess",
        "arabic_speech_commands": "arabic_speech_commands",
    }
    for folder, name in expected.items():
        assert detect_corpus(shared_data(folder)) == name
    assert detect_corpus(shared_data("fsdd") / "recordings") == "fsdd"
    assert detect_corpus(shared_data("mini_librispeech") / "LibriSpeech" / "train-clean-5") == "librispeech"


def test_detect_corpus_on_fixtures(tmp_path, write_audio):
    write_audio(tmp_path / "sc" / "yes" / "0a7c2a8d_nohash_0.wav")
    (tmp_path / "sc" / "testing_list.txt").write_text("")
    write_audio(tmp_path / "plain" / "x.wav")
    (tmp_path / "m.csv").write_text("")
    assert detect_corpus(tmp_path / "sc") == "speech_commands"
    assert detect_corpus(tmp_path / "plain") == "folder"
    assert detect_corpus(tmp_path / "m.csv") == "manifest"
    with pytest.raises(FileNotFoundError, match="cannot detect the corpus"):
        detect_corpus(tmp_path / "absent")
