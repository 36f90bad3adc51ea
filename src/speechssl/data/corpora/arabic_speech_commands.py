"""Arabic Speech Commands v1, read in its native layout.

Ghandoura, Hjabo & Al Dakkak, *Building and Benchmarking an Arabic Speech Commands
Dataset for Small-Footprint Keyword Spotting*, Engineering Applications of Artificial
Intelligence, 2021, https://github.com/abdulkaderghandoura/arabic-speech-commands-dataset
(CC BY 4.0). Files are ``dataset/{keyword}/{speaker:8 digits}_NO_{round}.wav`` (``.flac``
accepted); the corpus's own ``train.csv``/``val.csv``/``test.csv`` (columns ``file,class``,
paths relative to the corpus root) give a speaker-disjoint 60/20/20 split, used as
``train``/``valid``/``test``. Without the CSVs every file under ``dataset/`` is ``train``.
"""

from __future__ import annotations

import csv
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import (
    PendingUtterance,
    probe_utterances,
    require_folder,
    warn_missing_listed,
)
from speechssl.data.manifest import Manifest

SPLIT_FILES = {"train": "train.csv", "valid": "val.csv", "test": "test.csv"}
AUDIO_SUFFIXES = (".wav", ".flac")


def _speaker(path: Path) -> str:
    speaker = path.name[:8]
    if not speaker.isdigit() or len(speaker) != 8:
        raise ValueError(
            f"corpus 'arabic_speech_commands': {path}: expected a name starting with an 8-digit speaker id"
        )
    return speaker


def _candidate(path: Path, keyword: str, split: str) -> PendingUtterance:
    return PendingUtterance(
        path, id=f"{keyword}/{path.stem}", speaker=_speaker(path), split=split, labels={"keyword": keyword}
    )


def _resolve(root: Path, relative: str) -> Path | None:
    """The audio file a CSV names, also accepting it converted between .wav and .flac; ``None`` if absent."""
    path = root / relative
    if path.is_file():
        return path
    for suffix in AUDIO_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    return None


def load_arabic_speech_commands(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of Arabic Speech Commands at ``root`` (the folder with ``dataset/``).

    Label column: ``keyword``. Ids are ``{keyword}/{file stem}`` (file stems repeat across
    keywords). A file whose header is bad is recorded in ``bad_files`` and left out (see
    :func:`~speechssl.data.corpora.common.probe_utterances`); files a CSV names but the folder
    lacks (part of the corpus) are counted and named in a warning
    (:func:`~speechssl.data.corpora.common.warn_missing_listed`).

    Raises:
        FileNotFoundError: no such folder, no file a CSV names is present, or there are
            neither CSVs nor audio files.
        ValueError: a CSV without ``file,class`` columns, or a file name without a speaker id.
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, "arabic_speech_commands")
    present = {split: root / name for split, name in SPLIT_FILES.items() if (root / name).is_file()}
    candidates = []
    missing: dict[str, list[str]] = {}
    if present:
        for split, csv_path in present.items():
            with csv_path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                if reader.fieldnames is None or not {"file", "class"} <= set(reader.fieldnames):
                    raise ValueError(
                        f"corpus 'arabic_speech_commands': {csv_path}: expected columns file,class, "
                        f"found {reader.fieldnames}"
                    )
                for record in reader:
                    path = _resolve(root, record["file"])
                    if path is None:
                        missing.setdefault(csv_path.name, []).append(record["file"])
                    else:
                        candidates.append(_candidate(path, record["class"], split))
        warn_missing_listed("arabic_speech_commands", root, missing)
        if not candidates:
            raise FileNotFoundError(
                f"corpus 'arabic_speech_commands': no file named in {', '.join(present[s].name for s in present)} "
                f"is under {root}"
            )
    else:
        folder = root / "dataset"
        files = (
            sorted(
                p
                for p in folder.glob("*/*")
                if p.suffix.lower() in AUDIO_SUFFIXES and p.parent.name != "background_noise"
            )
            if folder.is_dir()
            else []
        )
        if not files:
            raise FileNotFoundError(
                f"corpus 'arabic_speech_commands': neither train.csv/val.csv/test.csv nor "
                f"dataset/<keyword>/*.wav found at {root}"
            )
        candidates = [_candidate(path, path.parent.name, "train") for path in files]
    return Manifest(probe_utterances(candidates, bad_files))
