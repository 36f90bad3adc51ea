"""A corpus folder's entries that are no readable audio file are bad files, counted and named;
files differing only by suffix are two utterances."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from speechssl.cli import main
from speechssl.data import BadFileSummary, load_corpus
from speechssl.data.audio import AudioError
from speechssl.data.corpora.common import list_audio


def _tone(path: Path, seconds: float = 0.2, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(round(seconds * rate)) / rate
    soundfile.write(path, 0.1 * np.sin(2 * np.pi * 220 * t), rate)
    return path


@pytest.fixture
def hostile_folder(tmp_path, monkeypatch) -> Path:
    """Two good files, a dangling link, a link loop, a FIFO and a subfolder that cannot be listed."""
    root = tmp_path / "corpus"
    _tone(root / "a.wav")
    _tone(root / "sub" / "b.flac")
    (root / "dangling.wav").symlink_to(root / "gone.wav")
    (root / "loop.wav").symlink_to(root / "loop.wav")
    os.mkfifo(root / "pipe.wav")
    _tone(root / "locked" / "c.wav")
    # the suite may run as root, whom chmod 000 does not stop: the folder's listing fails as it would
    scandir = os.scandir

    def refusing(path=".", *args):
        if Path(path) == root / "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return scandir(path, *args)

    monkeypatch.setattr(os, "scandir", refusing)
    return root


def test_listing_records_every_entry_it_cannot_read(hostile_folder):
    bad = BadFileSummary()
    files = list_audio(hostile_folder, bad)
    assert [path.relative_to(hostile_folder).as_posix() for path in files] == ["a.wav", "sub/b.flac"]
    reasons = {record.id: record.reason for record in bad}
    assert set(reasons) == {"dangling.wav", "locked", "loop.wav", "pipe.wav"}
    assert reasons["dangling.wav"].startswith("broken symbolic link")
    assert reasons["loop.wav"] == "symbolic link loop"
    assert reasons["pipe.wav"] == "not a regular file (FIFO)"
    assert reasons["locked"] == "folder not readable (Permission denied)"
    with pytest.raises(AudioError, match=r"dangling\.wav: broken symbolic link"):
        list_audio(hostile_folder)  # no summary: the first one stops it, named


def test_data_validate_counts_unlistable_entries(hostile_folder, capsys):
    assert main(["data", "validate", str(hostile_folder), "--corpus", "folder", "--json"]) == 2
    report = json.loads(capsys.readouterr().out)
    assert report["num_utterances"] == 2
    assert report["bad_files"]["count"] == 4
    assert {record["id"] for record in report["bad_files"]["files"]} == {
        "dangling.wav",
        "locked",
        "loop.wav",
        "pipe.wav",
    }


def test_files_differing_only_by_suffix_are_two_utterances(tmp_path):
    _tone(tmp_path / "x.wav")
    _tone(tmp_path / "x.flac", seconds=0.3)
    _tone(tmp_path / "y.wav")
    _tone(tmp_path / "spk" / "x.wav")
    manifest = load_corpus("folder", tmp_path)
    # only the colliding stems keep their suffix; every other id is as before
    assert manifest.ids == ["spk/x", "x.flac", "x.wav", "y"]
    assert dict(zip(manifest.ids, manifest.durations.tolist(), strict=True))["x.flac"] == pytest.approx(0.3)
    pattern = load_corpus("pattern", tmp_path, pattern="{utterance}")
    assert sorted(pattern.ids) == ["spk/x", "x.flac", "x.wav", "y"]
