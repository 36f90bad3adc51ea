"""Fluent Speech Commands (FSC), read in its native layout.

Lugosch, Ravanelli, Ignoto, Tomar & Bengio, *Speech Model Pre-training for End-to-End
Spoken Language Understanding*, Interspeech 2019, https://fluent.ai/research/fluent-speech-commands/.
The download ``fluent_speech_commands_dataset/`` holds ``wavs/speakers/{speakerId}/{uuid}.wav``
(16 kHz mono) and the official speaker-disjoint splits ``data/train_data.csv``,
``data/valid_data.csv`` and ``data/test_data.csv``, used as ``train``/``valid``/``test``.
Each CSV starts with an unnamed index column, then ``path,speakerId,transcription,action,
object,location`` (``path`` relative to the dataset root; ``object``/``location`` may be the
string ``none``). The intent is the slot triple ``action|object|location`` (31 intents).
"""

from __future__ import annotations

import csv
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import PendingUtterance, probe_utterances, require_folder
from speechssl.data.manifest import Manifest

CORPUS = "fluent_speech_commands"
SPLIT_FILES = {"train": "data/train_data.csv", "valid": "data/valid_data.csv", "test": "data/test_data.csv"}
COLUMNS = ("path", "speakerId", "transcription", "action", "object", "location")
SPEAKER_FOLDER = "wavs/speakers"


def _read_split(
    root: Path, csv_path: Path, split: str, check_files: bool, seen: dict[str, str]
) -> list[PendingUtterance]:
    """The rows of one split CSV as candidates; ``seen`` maps ids already read to their CSV line."""
    candidates = []
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        absent = [column for column in COLUMNS if column not in (reader.fieldnames or ())]
        if absent:
            raise ValueError(
                f"corpus {CORPUS!r}: {csv_path}, line 1: expected columns {','.join(COLUMNS)}, "
                f"found {reader.fieldnames} (missing {','.join(absent)})"
            )
        for record in reader:
            where = f"{csv_path}, line {reader.line_num}"
            empty = [column for column in COLUMNS if not record[column]]
            if empty:
                raise ValueError(
                    f"corpus {CORPUS!r}: {where}: expected a value in column {empty[0]!r}, found none"
                )
            path = root / record["path"]
            if check_files and not path.is_file():
                raise FileNotFoundError(f"corpus {CORPUS!r}: {where}: audio file not found: {path}")
            if path.stem in seen:
                raise ValueError(
                    f"corpus {CORPUS!r}: {where}: expected each wav once, found {record['path']} "
                    f"again (first at {seen[path.stem]})"
                )
            seen[path.stem] = where
            action, obj, location = record["action"], record["object"], record["location"]
            labels = {
                "transcript": record["transcription"],
                "action": action,
                "object": obj,
                "location": location,
                "intent": f"{action}|{obj}|{location}",
            }
            candidates.append(
                PendingUtterance(path, id=path.stem, speaker=record["speakerId"], split=split, labels=labels)
            )
    return candidates


def load_fluent_speech_commands(root: str | Path, bad_files: BadFileSummary | None = None) -> Manifest:
    """Manifest of Fluent Speech Commands at ``root`` (the ``fluent_speech_commands_dataset`` folder).

    Label columns: ``transcript``, ``action``, ``object``, ``location`` and ``intent``
    (``action|object|location``, ``none`` slots kept as ``none``). Ids are the wav file
    stems (UUIDs, unique across the corpus); speakers are the CSVs' ``speakerId``. Rows
    keep CSV order: train, then valid, then test. With ``bad_files``, a file that is
    missing or whose header is bad is recorded there and left out (see
    :func:`~speechssl.data.corpora.common.probe_utterances`).

    Raises:
        FileNotFoundError: no such folder, one of the three split CSVs is missing, or (with
            ``bad_files=None``) a file named in a CSV is missing (naming the CSV and line).
        ValueError: a CSV without the FSC columns, a row with an empty field, or a wav
            named twice (naming the CSV and line).
        AudioError: with ``bad_files=None``, a file whose header is bad.
    """
    root = require_folder(root, CORPUS)
    missing = [name for name in SPLIT_FILES.values() if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"corpus {CORPUS!r}: expected {', '.join(SPLIT_FILES.values())} at {root}, "
            f"found no {', '.join(missing)}"
        )
    seen: dict[str, str] = {}
    candidates = []
    for split, name in SPLIT_FILES.items():
        candidates += _read_split(root, root / name, split, bad_files is None, seen)
    return Manifest(probe_utterances(candidates, bad_files))
