"""Issue 17: paired text and images reach the batch; the spoken-digit ↔ handwritten-digit pairing
keeps speakers and images on one side of the split."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from speechssl.cli import main
from speechssl.data import Manifest
from speechssl.data.batch import AudioBatch
from speechssl.data.dataset import AudioDataset, collate_audio
from speechssl.data.manifest import Utterance
from speechssl.data.pairing import (
    DIGIT_WORDS,
    corpus_pairings,
    digit_images,
    load_image,
    pair_digit_images,
    write_digit_pairing,
)

SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")


def _fake_fsdd(recordings: int = 6) -> Manifest:
    """FSDD's layout of rows (no audio read): 6 speakers x 10 digits x ``recordings``."""
    return Manifest(
        Utterance(f"{d}_{s}_{i}", Path(f"/x/{d}_{s}_{i}.wav"), 0.4, 8000, s, "train", {"keyword": str(d)})
        for s in SPEAKERS
        for d in range(10)
        for i in range(recordings)
    )


def test_no_speaker_and_no_image_is_on_both_sides_of_a_split():
    pairing = pair_digit_images(_fake_fsdd(), seed=3)
    speakers, images = defaultdict(set), defaultdict(set)
    for row in pairing.manifest:
        speakers[row.split].add(row.speaker)
        images[row.split].add(int(row.labels["image_index"]))
    assert sorted(len(s) for s in speakers.values()) == [1, 1, 4]  # FSDD's 6 speakers: 4 / 1 / 1
    for a, b in [("train", "valid"), ("train", "test"), ("valid", "test")]:
        assert not speakers[a] & speakers[b]
        assert not images[a] & images[b]
    _, targets = digit_images()
    for row in pairing.manifest:
        index = int(row.labels["image_index"])
        assert pairing.image_split[index] == row.split  # drawn from its own split's images
        assert targets[index] == int(row.labels["keyword"])  # of the same digit
        assert row.labels["word"] == DIGIT_WORDS[int(row.labels["keyword"])]
    counts = {split: int((pairing.image_split == split).sum()) for split in ("train", "valid", "test")}
    assert sum(counts.values()) == 1797 and counts["test"] == pytest.approx(0.15 * 1797, abs=10)


def test_the_pairing_is_seeded():
    first, again = pair_digit_images(_fake_fsdd(), seed=1), pair_digit_images(_fake_fsdd(), seed=1)
    other = pair_digit_images(_fake_fsdd(), seed=2)
    assert first.manifest == again.manifest
    assert first.manifest.column("image_index") != other.manifest.column("image_index")


def test_the_pairing_refuses_corpora_it_cannot_split():
    rows = [row for row in _fake_fsdd() if row.speaker in SPEAKERS[:2]]
    with pytest.raises(ValueError, match="at least 3 speakers"):
        pair_digit_images(Manifest(rows))


def test_written_pairs_load_as_images_beside_the_manifest(tmp_path):
    pairing = pair_digit_images(_fake_fsdd(recordings=1))
    manifest = write_digit_pairing(pairing, tmp_path / "paired" / "manifest.csv")
    assert Manifest.load(tmp_path / "paired" / "manifest.csv").column("image") == manifest.column("image")
    row = manifest[0]
    image = load_image(row.labels["image"])
    assert Path(row.labels["image"]).parent == tmp_path / "paired" / "images"
    assert image.shape == (1, 8, 8) and image.dtype == torch.float32
    torch.testing.assert_close(image, torch.from_numpy(pairing.images[int(row.labels["image_index"])]))


def test_load_image_reads_arrays_and_names_bad_files(tmp_path):
    assert load_image(np.zeros((4, 5))).shape == (1, 4, 5)
    assert load_image(np.zeros((3, 4, 5))).shape == (3, 4, 5)
    with pytest.raises(ValueError, match=r"x\.jpg: expected an image file ending in \.npy or \.png"):
        load_image(tmp_path / "x.jpg")
    with pytest.raises(FileNotFoundError, match=r"missing\.npy: image file not found"):
        load_image(tmp_path / "missing.npy")
    np.save(tmp_path / "flat.npy", np.zeros(5))
    with pytest.raises(ValueError, match=r"flat\.npy: expected \(height, width\)"):
        load_image(tmp_path / "flat.npy")


def _corpus(folder: Path) -> Manifest:
    folder.mkdir()
    rows = []
    for index, (word, size) in enumerate([("one", (1, 4, 4)), ("two", (1, 4, 4)), ("three", (1, 4, 4))]):
        path = folder / f"{index}.wav"
        sf.write(path, np.full(1600 * (index + 1), 0.1, dtype=np.float32), 16000)
        np.save(folder / f"{index}.npy", np.full(size, float(index), dtype=np.float32))
        labels = {"word": word, "image": str(folder / f"{index}.npy")}
        rows.append(Utterance(f"u{index}", path, 0.1 * (index + 1), 16000, "s", "train", labels))
    return Manifest(rows)


def test_paired_text_and_images_reach_the_batch(tmp_path):
    dataset = AudioDataset(_corpus(tmp_path / "c"), text_column="word", image_column="image")
    batch = collate_audio([dataset[i] for i in range(3)])
    assert batch.text == ["one", "two", "three"]
    assert batch.images.shape == (3, 1, 4, 4) and batch.images[2].unique().tolist() == [2.0]
    assert batch.lengths.tolist() == [1600, 3200, 4800]
    plain = collate_audio([AudioDataset(dataset.manifest)[0]])
    assert plain.text is None and plain.images is None
    with pytest.raises(ValueError, match="text_column: expected a label column of the manifest"):
        AudioDataset(dataset.manifest, text_column="transcript")


def test_collate_refuses_images_of_different_shapes(tmp_path):
    dataset = AudioDataset(_corpus(tmp_path / "c"), image_column="image")
    np.save(tmp_path / "c" / "2.npy", np.zeros((1, 5, 5), dtype=np.float32))
    with pytest.raises(ValueError, match="expected one shape per batch"):
        collate_audio([dataset[i] for i in range(3)])


def test_audio_batch_checks_and_moves_its_paired_modalities():
    waveforms, lengths = torch.zeros(2, 10), torch.tensor([10, 5])
    with pytest.raises(ValueError, match="text must hold one string per row"):
        AudioBatch(waveforms, lengths, ["a", "b"], text=["only one"])
    with pytest.raises(ValueError, match=r"images must be \(batch, channels, height, width\)"):
        AudioBatch(waveforms, lengths, ["a", "b"], images=torch.zeros(2, 8, 8))
    batch = AudioBatch(waveforms, lengths, ["a", "b"], text=["x", "y"], images=torch.zeros(2, 1, 8, 8))
    moved = batch.to("cpu")
    assert moved.text == ["x", "y"] and moved.images.shape == (2, 1, 8, 8)


def test_data_list_says_which_pairing_each_corpus_offers(capsys):
    assert {p.column for p in corpus_pairings("librispeech")} == {"transcript"}
    assert {p.modality for p in corpus_pairings("fsdd")} == {"text", "image"}
    assert corpus_pairings("ravdess") == ()
    assert main(["data", "list"]) == 0
    assert "pairs with text (transcript)" in capsys.readouterr().out


def test_pair_digits_command_writes_a_disjoint_paired_manifest(tmp_path, capsys, shared_data):
    fsdd = shared_data("fsdd")
    output = tmp_path / "pairs" / "manifest.csv"
    assert main(["data", "pair-digits", str(fsdd), "-o", str(output)]) == 0
    assert "test: 500 utterances of 1 speaker(s)" in capsys.readouterr().out
    manifest = Manifest.load(output)
    assert {"word", "image", "image_index"} <= set(manifest.label_columns)
    test_images = set(manifest.filter(split="test").column("image"))
    assert not test_images & set(manifest.filter(split="train").column("image"))
