"""Google Speech Commands v0.01 / v0.02, read in its native layout.

Warden, *Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition*,
arXiv:1804.03209, 2018 (CC BY 4.0). Files are ``{word}/{speaker}_nohash_{n}.wav``;
``validation_list.txt`` and ``testing_list.txt`` name the official ``valid`` and ``test``
files (paths relative to the root), every other file is ``train``. The
``_background_noise_`` folder holds noise, not utterances, and is skipped.

:func:`load_speech_commands_superb` reads v0.01 as SUPERB's keyword spotting task does
(Yang et al. 2021; s3prl v0.4 ``downstream/speech_commands``): 12 classes, the separate
``speech_commands_test_set_v0.01`` archive as ``test``, and ``_silence_`` made of 1 s crops
of ``_background_noise_``.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import soundfile

from speechssl.data.audio import DEFAULT_SAMPLE_RATE, BadFileSummary, load_audio
from speechssl.data.corpora.common import (
    PendingUtterance,
    probe_utterances,
    require_folder,
    warn_missing_listed,
)
from speechssl.data.manifest import Manifest
from speechssl.storage import cached_entry

BACKGROUND_FOLDER = "_background_noise_"
FILE_PATTERN = re.compile(r"^(?P<speaker>[0-9a-fA-F]+)_nohash_(?P<n>\d+)$")
SPLIT_LISTS = {"valid": "validation_list.txt", "test": "testing_list.txt"}


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def load_speech_commands(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of Speech Commands at ``root`` (the folder holding the word folders).

    Ids are ``{word}/{file stem}``. Label column: ``keyword``. A file whose header is bad is
    recorded in ``bad_files`` and left out (see
    :func:`~speechssl.data.corpora.common.probe_utterances`).

    A folder holding part of the corpus is read as it is: files the split lists name but the
    folder lacks are counted and named in a warning (see
    :func:`~speechssl.data.corpora.common.warn_missing_listed`), not an error.

    Raises:
        FileNotFoundError: no such folder, or no word folders with ``.wav`` files.
        ValueError: a file name not of the form ``{speaker}_nohash_{n}.wav``.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, "speech_commands")
    lists = {split: _read_list(root / name) for split, name in SPLIT_LISTS.items()}
    files = sorted(p for p in root.glob("*/*.wav") if p.parent.name != BACKGROUND_FOLDER and p.is_file())
    if not files:
        raise FileNotFoundError(f"corpus 'speech_commands': no {{word}}/*.wav files under {root}")
    present = {path.relative_to(root).as_posix() for path in files}
    warn_missing_listed(
        "speech_commands",
        root,
        {SPLIT_LISTS[split]: sorted(names - present) for split, names in lists.items()},
    )
    candidates = []
    for path in files:
        relative = path.relative_to(root).as_posix()
        match = FILE_PATTERN.match(path.stem)
        if match is None:
            raise ValueError(f"corpus 'speech_commands': {path}: expected a name like 0a7c2a8d_nohash_0.wav")
        split = next((name for name, members in lists.items() if relative in members), "train")
        word = path.parent.name
        candidates.append(
            PendingUtterance(
                path,
                id=f"{word}/{path.stem}",
                speaker=match["speaker"],
                split=split,
                labels={"keyword": word},
            )
        )
    return Manifest(probe_utterances(candidates, bad_files))


KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
SUPERB_CLASSES = (*KEYWORDS, UNKNOWN, SILENCE)
TEST_SET_FOLDER = "speech_commands_test_set_v0.01"
SILENCE_SECONDS = 1.0
SILENCE_VALID_EVERY = 10  # every 10th crop is valid: the 10% of validation_list.txt


def superb_class(word: str) -> str:
    """The SUPERB keyword-spotting class of a v0.01 word folder: the word, or ``_unknown_``."""
    return word if word in KEYWORDS else UNKNOWN


def _crops(noise: Path) -> list[np.ndarray]:
    """Every whole consecutive second of ``noise`` at 16 kHz, each ``(samples,)``."""
    size = round(SILENCE_SECONDS * DEFAULT_SAMPLE_RATE)
    waveform = load_audio(noise, DEFAULT_SAMPLE_RATE)  # (samples,)
    return [waveform[index * size : (index + 1) * size] for index in range(len(waveform) // size)]


def _write_crops(crops: dict[str, np.ndarray], folder: Path) -> dict[str, int]:
    for name, crop in crops.items():
        soundfile.write(str(folder / name), crop, DEFAULT_SAMPLE_RATE)
    return {"crops": len(crops)}


def silence_crops(root: Path, cache_dir: Path | None = None) -> list[Path]:
    """The 1 s crops of ``root/_background_noise_/*.wav``, written once into the speechssl cache.

    s3prl draws a new random 1 s crop of a noise file each time it is sampled; frozen features
    are computed once, so every whole consecutive second of each file is one fixed crop
    (``{file stem}_{index:04d}.wav``). The entry is keyed by each noise file's path, size and
    modification time.

    Raises:
        FileNotFoundError: no ``_background_noise_/*.wav`` under ``root``.
    """
    noise_files = sorted((root / BACKGROUND_FOLDER).glob("*.wav"))
    if not noise_files:
        raise FileNotFoundError(
            f"corpus 'speech_commands': no {BACKGROUND_FOLDER}/*.wav under {root} "
            "(the _silence_ class is cut from it)"
        )
    crops = {
        f"{noise.stem}_{index:04d}.wav": crop
        for noise in noise_files
        for index, crop in enumerate(_crops(noise))
    }
    parts = {
        "silence_crops": [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in noise_files],
        "seconds": SILENCE_SECONDS,
        "sample_rate": DEFAULT_SAMPLE_RATE,
    }
    from speechssl.data.config import default_cache_dir  # data.config imports the corpus loaders

    folder = cached_entry(
        (cache_dir or default_cache_dir()) / "speech_commands_silence",
        parts,
        list(crops),
        lambda staging: _write_crops(crops, staging),
        lambda entry, hit: entry,
    )
    return [folder / name for name in crops]


def _speaker_of(stem: str) -> str:
    """The hashed speaker of ``{speaker}_nohash_{n}[...]``, else ``unknown`` (silence clips)."""
    return stem.split("_nohash_")[0] if "_nohash_" in stem else "unknown"


def load_speech_commands_superb(
    root: str | Path,
    bad_files: BadFileSummary | None = None,
    test_root: str | Path | None = None,
    cache_dir: str | Path | None = None,
) -> Manifest:
    """Speech Commands v0.01 as SUPERB's 12-class keyword spotting (s3prl v0.4 ``speech_commands``).

    - ``train``/``valid``: the word folders of ``root`` split by ``validation_list.txt``
      (the same speaker-hash split s3prl recomputes); files of ``testing_list.txt`` are left
      out, as s3prl discards them. Words other than the ten keywords become ``_unknown_``.
      ``_silence_`` rows are 1 s crops of ``_background_noise_`` (:func:`silence_crops`),
      every 10th in ``valid``, the rest in ``train``.
    - ``test``: the separate ``speech_commands_test_set_v0.01`` archive (default: beside
      ``root``), whose folders are the 12 classes themselves.

    Label columns: ``keyword`` (the 12-class label) and ``word`` (the folder name).

    Raises:
        FileNotFoundError: ``root``, its background noise or the test folder is missing.
        ValueError: a test-set folder that is not one of the 12 classes, or a file name not
            of the form ``{speaker}_nohash_{n}.wav``.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, "speech_commands")
    test_folder = require_folder(
        Path(test_root) if test_root is not None else root.parent / TEST_SET_FOLDER, "speech_commands"
    )
    words = load_speech_commands(root, bad_files)
    rows = [
        dataclasses.replace(
            row, labels={"keyword": superb_class(row.labels["keyword"]), "word": row.labels["keyword"]}
        )
        for row in words
        if row.split != "test"
    ]
    candidates = [
        PendingUtterance(
            crop,
            id=f"{SILENCE}/{crop.stem}",
            speaker=crop.stem.rsplit("_", 1)[0],
            split="valid" if index % SILENCE_VALID_EVERY == 0 else "train",
            labels={"keyword": SILENCE, "word": BACKGROUND_FOLDER},
        )
        for index, crop in enumerate(silence_crops(root, Path(cache_dir) if cache_dir is not None else None))
    ]
    for folder in sorted(p for p in test_folder.iterdir() if p.is_dir()):
        if folder.name not in SUPERB_CLASSES:
            raise ValueError(
                f"corpus 'speech_commands': {folder}: expected test folders named {', '.join(SUPERB_CLASSES)}"
            )
        candidates += [
            PendingUtterance(
                path,
                id=f"test/{folder.name}/{path.stem}",
                speaker=_speaker_of(path.stem),
                split="test",
                labels={"keyword": folder.name, "word": folder.name},
            )
            for path in sorted(folder.glob("*.wav"))
        ]
    if not any(c.split == "test" for c in candidates):
        raise FileNotFoundError(f"corpus 'speech_commands': no {{class}}/*.wav files under {test_folder}")
    return Manifest([*rows, *probe_utterances(candidates, bad_files)])
