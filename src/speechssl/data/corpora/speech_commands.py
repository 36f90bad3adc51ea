"""Google Speech Commands v0.01 / v0.02, read in its native layout.

Warden, *Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition*,
arXiv:1804.03209, 2018 (CC BY 4.0). Files are ``{word}/{speaker}_nohash_{n}.wav``;
``validation_list.txt`` and ``testing_list.txt`` name the official ``valid`` and ``test``
files (paths relative to the root), every other file is ``train``. The
``_background_noise_`` folder holds noise, not utterances, and is skipped.
"""

from __future__ import annotations

import re
from pathlib import Path

from speechssl.data.audio import BadFileSummary
from speechssl.data.corpora.common import (
    PendingUtterance,
    probe_utterances,
    require_folder,
    warn_missing_listed,
)
from speechssl.data.manifest import Manifest

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
